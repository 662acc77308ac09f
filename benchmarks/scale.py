"""Scaling: genegrad end to end against CellRank 2 and Palantir on the same preprocessed synthetic trees.

genegrad = manifold + patterns of all 2,000 genes (their gradients at 5 scales, streamed, plus the permutation
null) + fate probabilities; timed apart (not in its wall time), the fate probabilities again with the terminal
states detected from the root, and the report of that (``genegrad report``). CellRank 2 = scanpy neighbours +
diffusion pseudotime + PseudotimeKernel + GPCCA fate probabilities (direct solver). Palantir = diffusion maps +
multiscale space + run_palantir (500 waypoints). Each method runs in its own process (peak RSS = VmHWM of that
process); same terminal cells and root for all. scanpy = ``pp.neighbors`` + ``tl.diffmap`` + ``tl.dpt`` (its
defaults), the cost a scanpy user already pays. Needs the peers: ``pip install -e ".[bench]"``.

    python benchmarks/scale.py --sizes 10000,30000,100000
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_memory_gb, parse_or_work, record, run_worker, tree_data
from fate import run_cellrank, run_palantir
from speed import peak_gb

N_GENES = 2000
#: Environment variable that turns the timed-apart steps (detected states, report) off in a worker.
EXTRAS_ENV = "GENEGRAD_SCALE_EXTRAS"


def worker(method: str, path: str) -> dict:
    import warnings

    import anndata as ad

    warnings.filterwarnings("ignore")
    adata = ad.read_h5ad(path)
    root = int(np.argmin(adata.obs["pseudotime"].to_numpy()))
    base = peak_gb()
    t0 = time.perf_counter()
    if method == "genegrad":
        import genegrad as gg

        gg.pp.manifold(adata)
        t_manifold = time.perf_counter() - t0
        gg.tl.patterns(adata, genes=list(adata.var_names))
        t_patterns = time.perf_counter() - t0 - t_manifold
        gg.tl.fate_bias(adata, "terminal")
        t_fate = time.perf_counter() - t0 - t_manifold - t_patterns
        wall = time.perf_counter() - t0
        extra = {"d": int(adata.uns["genegrad"]["n_dims"]), "manifold s": t_manifold, "patterns s": t_patterns,
                 "fate s": t_fate, "analysis peak GB": peak_gb(), "wall": wall}
        if os.environ.get(EXTRAS_ENV, "1") == "1":
            # apart, not in the wall time: the fate probabilities again with terminal states detected from the root
            t1 = time.perf_counter()
            detected = gg.tl.fate_bias(adata, root=root, groupby="fate", copy=True)
            t_detected = time.perf_counter() - t1
            # apart as well: the report of it all (genegrad report), with the detected states and their pseudotime
            t2 = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                gg.io.write_report(detected, out)
            extra |= {"fate, detected states s": t_detected,
                      "states detected": ",".join(detected.obs["genegrad_terminal_states"].cat.categories),
                      "report s": time.perf_counter() - t2}
    elif method == "scanpy":  # the reference cost of a trajectory analysis: neighbours, diffusion map, DPT
        import scanpy as sc

        sc.pp.neighbors(adata, use_rep="X_pca", random_state=0)
        sc.tl.diffmap(adata)
        adata.uns["iroot"] = root
        sc.tl.dpt(adata)
        extra = {}
    elif method == "CellRank 2":
        # its default solver: the direct one (used in fate.py for paul15) ran out of memory at 30,000 cells
        run_cellrank(adata, "terminal", root=root, solver="gmres")
        extra = {}
    elif method == "Palantir":
        run_palantir(adata, "terminal", root=root)
        extra = {}
    else:
        raise ValueError(method)
    wall = extra.pop("wall", time.perf_counter() - t0)
    return {"method": method, "wall s": wall, "peak GB": peak_gb(), "data GB": base, **extra}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--methods", default="genegrad,scanpy,CellRank 2,Palantir")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--peer-timeout", type=int, default=None, help="for CellRank 2 and Palantir (default: --timeout)")
    ap.add_argument("--peer-max-cells", type=int, default=None, help="run the peers up to this many cells only")
    ap.add_argument("--extras-max-cells", type=int, default=None,
                    help="time the detected-states fate and the report up to this many cells only (default: all)")
    ap.add_argument("--peer-python", default=None,
                    help="interpreter of an environment with CellRank 2 and Palantir (default: this one)")
    ap.add_argument("--data-dir", default=None,
                    help="keep the generated data sets here and reuse them (default: a temporary directory)")
    ap.add_argument("--memory-limit", type=float, default=None,
                    help="stop a worker whose processes hold more than this many GiB (default: 92%% of the "
                         "machine's memory, under the kernel's out-of-memory killer)")
    ap.add_argument("--rows-from", default=None, metavar="LOG",
                    help="run nothing: table and record the rows an earlier run with the same options printed to "
                         "LOG (for a run whose recording failed)")
    args = parse_or_work(ap, worker)
    if args is None:
        return
    import genegrad as gg

    memory_limit = args.memory_limit or 0.92 * machine_memory_gb()
    rows, stopped = [], {}  # stopped: method -> the size where it failed (not run at larger sizes)
    logged = None  # with --rows-from: (method, cells) -> the row the earlier run printed; nothing is run again
    if args.rows_from is not None:
        if not Path(args.rows_from).is_file():
            ap.error(f"--rows-from: no file {args.rows_from!r}; give the log of the run to record")
        logged = {(r["method"], r["cells"]): r for r in (ast.literal_eval(line) for line in
                  Path(args.rows_from).read_text().splitlines() if line.startswith("{'method': "))}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            path = Path(args.data_dir or tmp) / f"tree_{n}.h5ad"
            if logged is None and not path.exists():
                adata = tree_data(n, depth=2000, n_genes=N_GENES)
                adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
                adata.write_h5ad(path)
                del adata
            path = str(path)
            extras = args.extras_max_cells is None or n <= args.extras_max_cells
            os.environ[EXTRAS_ENV] = "1" if extras else "0"
            for method in args.methods.split(","):
                if method != "genegrad" and args.peer_max_cells is not None and n > args.peer_max_cells:
                    continue
                if method in stopped:
                    row = {"method": method, "cells": n, "error": f"not run: stopped at {stopped[method]:,}"}
                elif logged is not None:
                    if (method, n) not in logged:
                        ap.error(f"--rows-from: {args.rows_from!r} has no row of {method} at {n:,} cells; give the "
                                 "log of a run with the same --sizes and --methods")
                    row = logged[method, n]
                else:
                    limit = args.timeout if method == "genegrad" or args.peer_timeout is None else args.peer_timeout
                    python = args.peer_python if method in ("CellRank 2", "Palantir") else None
                    row = run_worker(__file__, method, path, timeout=limit, python=python, memory_gb=memory_limit)
                    row["cells"] = n
                if "error" in row and method not in stopped:
                    stopped[method] = n
                rows.append(row)
                print(row, flush=True)
    table = pd.DataFrame(rows)
    if "wall s" not in table:  # every worker failed
        table["wall s"] = np.nan
    gg_time = table[table.method == "genegrad"].set_index("cells")["wall s"]
    table["genegrad / this"] = [gg_time.get(c, np.nan) / w if np.isfinite(w) else np.nan
                                for c, w in zip(table["cells"], table.get("wall s", np.nan).astype(float),
                                                strict=True)]
    cols = [c for c in ["cells", "method", "wall s", "peak GB", "analysis peak GB", "data GB", "d", "manifold s",
                        "patterns s", "fate s", "fate, detected states s", "states detected", "report s",
                        "genegrad / this", "error"]
            if c in table]
    table = table[cols].round(3)
    notes = []
    for method, sub in table.groupby("method"):
        ok = sub.dropna(subset=["wall s"])
        if len(ok) > 2:  # two sizes fit fixed costs, not scaling
            slope = np.polyfit(np.log(ok["cells"]), np.log(ok["wall s"].astype(float)), 1)[0]
            notes.append(f"{method}: fitted exponent of wall time in N = {slope:.3f}")
    print(table.to_string(index=False))
    print("\n".join(notes))
    if not args.no_record:
        command = f"python benchmarks/scale.py --sizes {args.sizes} --methods '{args.methods}' --timeout {args.timeout}"
        if args.peer_timeout is not None:
            command += f" --peer-timeout {args.peer_timeout}"
        if args.peer_max_cells is not None:
            command += f" --peer-max-cells {args.peer_max_cells}"
        if args.extras_max_cells is not None:
            command += f" --extras-max-cells {args.extras_max_cells}"
        if args.memory_limit is not None:
            command += f" --memory-limit {args.memory_limit:g}"
        if args.peer_python is not None:
            command += " --peer-python PEER_ENV/bin/python"
            code = ("import cellrank, palantir, scanpy; "
                    "print(cellrank.__version__, palantir.__version__, scanpy.__version__)")
            found = subprocess.run([args.peer_python, "-c", code], capture_output=True, text=True, check=False)
            cr, pal, sc_v = (found.stdout.split() + ["absent"] * 3)[:3]
            notes.append(f"the peers ran in their own environment: cellrank {cr}, palantir {pal}, scanpy {sc_v}")
        record("Scale", command, table.to_markdown(index=False),
               notes="".join(f"{n}; " for n in notes)
                     + f"a worker was stopped past {memory_limit:.1f} GiB of resident memory (its processes "
                     "together) and a method that failed was not run at larger sizes; "
                     + "Synthetic trees, 2,000 genes, 2,000 UMIs/cell, 30 PCs, CPU only (no GPU "
                     "was available to this session). genegrad computes every gene's gradients at 5 scales (inside "
                     "`tl.patterns`, streamed) besides the fate probabilities; the peers compute fate "
                     "probabilities only. 'data GB' is the process's peak RSS after loading the AnnData. 'fate, "
                     "detected states s': gg.tl.fate_bias(root=..., groupby='fate') on the same fitted manifold, "
                     "timed apart (not in 'wall s'), with the states it named. 'peak GB' is the worker's peak "
                     "RSS over everything it ran, 'analysis peak GB' the peak when the timed analysis ended. "
                     "'report s': gg.io.write_report of that result (patterns, fates, drivers, five figures), "
                     "timed apart too.",
               pkgs=("cellrank", "palantir"))


if __name__ == "__main__":
    main()
