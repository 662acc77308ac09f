"""Output size: what ``genegrad run`` writes by default, against the input and against a stored gradient tensor.

Each data set goes through the command line as a user would run it (gradients, patterns, fates where the data
have labelled terminal states, a report), once with the default ``--store recompute`` and once with
``--store obsm`` (the tensor kept in the h5ad). Then, on the default output, what a user reads afterwards:
``get.gradients`` and ``get.gradients_se`` at the recommended scales, a gradient stream plot, and
``genegrad report`` from the written file. Target: output at most 3x the input plus 50 MB.

    python benchmarks/output_size.py            # paul15, the Granja scATAC-seq subset, a 30,000-cell tree
    python benchmarks/output_size.py --no-tree
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import record

DATA = Path(os.environ.get("GENEGRAD_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MB = 1024**2


def _cli(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genegrad.cli", *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def _reads(path: Path, outdir: Path) -> str:
    """Read the default output back as a user would: gradients, standard errors, a stream plot, the report."""
    import anndata as ad
    import matplotlib as mpl

    mpl.use("Agg")
    import genegrad as gg

    a = ad.read_h5ad(path)
    genes = [str(g) for g in a.uns["genegrad"]["gradients"]["genes"][:20]]
    gg.get.gradients(a, genes, scale="auto")
    gg.get.gradients_se(a, genes, scale="auto")
    gg.pl.gradient_stream(a, genes[0], scale=2)
    _cli("report", str(path), "-o", str(outdir / "report_again"))
    return "yes"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-tree", action="store_true", help="skip the 30,000-cell synthetic tree")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    runs = [
        ("paul15 (RNA, 2,730 cells)", DATA / "paul15" / "paul15.h5ad",
         ["--patterns", "--terminal-groups", "paul15_clusters:3Ery,15Mo,7MEP"]),
        ("Granja subset (scATAC-seq)", DATA / "granja2019_bm_scatac_subset" / "hemato_atac.h5ad",
         ["--atac", "--patterns"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.no_tree:
            import genegrad as gg

            tree = gg.datasets.synthetic("tree", n_cells=30_000, n_genes=2_000, depth=1_000, rng=0)
            tree.obs["terminal"] = gg.datasets.tree_terminal_states(tree)
            tree.write_h5ad(tmp / "tree.h5ad", compression="gzip")
            root = str(tree.obs_names[int(tree.obs["pseudotime"].argmin())])
            del tree
            runs.append(("synthetic tree (30,000 cells)", tmp / "tree.h5ad",
                         ["--patterns", "--terminal", "terminal", "--root", root]))
        for name, src, extra in runs:
            row = {"data": name, "input MB": src.stat().st_size / MB}
            for store in ("recompute", "obsm"):
                out = tmp / f"{src.stem}.{store}.h5ad"
                wall = _cli("run", str(src), "-o", str(out), "--store", store, "--report", str(tmp / f"r.{store}"),
                            "--force", *extra)
                row[f"{store}: output MB"] = out.stat().st_size / MB
                row[f"{store}: run s"] = wall
                if store == "recompute":
                    row["reads back (get, pl, report)"] = _reads(out, tmp)
                out.unlink()
            row["target MB (3 x input + 50)"] = 3 * row["input MB"] + 50
            row["default within target"] = row["recompute: output MB"] <= row["target MB (3 x input + 50)"]
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows).round(1)
    print(table.to_string(index=False))
    if not args.no_record:
        record("Output size", "python benchmarks/output_size.py" + (" --no-tree" if args.no_tree else ""),
               table.to_markdown(index=False),
               notes="`genegrad run` with its defaults (`--store recompute`: no gradient tensor in the h5ad; "
                     "`get.gradients` recomputes the genes asked for) against `--store obsm` (the tensor of every "
                     "highly variable gene at 5 scales with standard errors kept in `obsm`). Inputs as published "
                     "(paul15 and Granja: the files in `../shared/data`; the tree: written with gzip). `genegrad run` "
                     "writes its h5ad gzip-compressed; it holds the log-normalised `X` and the counts. The 'run s' "
                     "columns include the UMAP and the report.")


if __name__ == "__main__":
    main()
