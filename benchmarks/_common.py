"""Shared by the benchmark scripts: machine description and appending a table to RESULTS.md."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("RESULTS.md")


def commit() -> str:
    """The checked-out commit (with ``+changes`` when the tree is dirty), or ``unknown`` outside git."""
    root = Path(__file__).parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" +changes in src" if dirty else "")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {machine_memory_gb():.0f} GB, {cpu}, {platform.system()} {platform.machine()}"


def machine_memory_gb() -> float:
    """The machine's physical memory, GiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def versions(*pkgs: str) -> str:
    out = []
    for p in pkgs:
        try:
            out.append(f"{p} {version(p)}")
        except Exception:
            out.append(f"{p} (absent)")
    return ", ".join(out)


def record(title: str, command: str, table: str, notes: str = "", pkgs: tuple[str, ...] = ()) -> None:
    """Write the table of ``title`` run by ``command`` into RESULTS.md, dated, with the machine and versions.

    The section replaces the one with the same title and command (RESULTS.md holds the current tables; earlier
    ones live in git history), or is appended.
    """
    today = _dt.date.today().isoformat()
    text = (f"## {title} ({today})\n\n`{command}`  \nMachine: {machine()}  \nCommit: {commit()}  \n"
            f"Versions: {versions('genegrad', 'numpy', 'scipy', 'scanpy', 'anndata', *pkgs)}\n\n{table}\n")
    if notes:
        text += f"\n{notes}\n"
    text += "\n"
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    parts = re.split(r"(?m)^(?=## )", old)
    for i, sec in enumerate(parts[1:], start=1):
        head = re.match(r"## (.*?) \(\d{4}-\d\d-\d\d\)", sec)
        cmd = re.search(r"(?m)^`([^`]*)`", sec)
        if head and head.group(1) == title and cmd and cmd.group(1) == command:
            parts[i] = text
            break
    else:
        parts[-1] = parts[-1].rstrip("\n") + "\n\n"
        parts.append(text)
    RESULTS.write_text("".join(parts))


def scanpy_log_pca(counts, *, n_top_genes: int):
    """A copy of ``counts`` through scanpy's recipe: normalised, log1p, highly variable genes flagged, PCA."""
    import scanpy as sc

    b = counts.copy()
    sc.pp.normalize_total(b)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, n_top_genes=n_top_genes)
    sc.pp.pca(b, random_state=0)
    return b


def paul15_root(Y, clusters) -> int:
    """paul15's root for the fate benchmarks: the MEP cell nearest the GMPs' centroid in ``Y`` (where the two
    lineages meet). Not ``uns['iroot']``, which lies in 8Mk, one of the terminal states."""
    cl = np.asarray(clusters).astype(str)
    mep = np.flatnonzero(cl == "7MEP")
    gmp = Y[np.isin(cl, ["9GMP", "10GMP"])].mean(axis=0)
    return int(mep[np.argmin(((Y[mep] - gmp) ** 2).sum(axis=1))])


def tree_data(n_cells: int, *, depth: int, n_genes: int = 2000):
    """The benchmarks' synthetic tree (seed 0), preprocessed (``n_genes`` highly variable genes, 30 PCs), counts
    dropped: what every method of a benchmark reads."""
    import genegrad as gg

    adata = gg.datasets.synthetic("tree", n_cells=n_cells, n_genes=n_genes, depth=depth, rng=0)
    gg.pp.preprocess(adata, n_top_genes=n_genes, n_comps=30)
    del adata.layers["counts"]
    return adata


def run_worker(script: str, method: str, path: str, *, timeout: float | None = None, python: str | None = None,
               memory_gb: float | None = None) -> dict:
    """Run ``script --worker METHOD PATH`` in its own process (its own peak RSS) and return its JSON row.

    ``python``: the interpreter (another environment's, e.g. one with the peers installed); this one by default.
    ``memory_gb``: stop the worker when its processes (it and the ones it starts, e.g. joblib's) hold more than
    this much resident memory together (GiB), before the kernel's out-of-memory killer does it less cleanly.

    A failure becomes ``{"method", "error"}``: the last line of stderr, the exit code of a killed process, the
    timeout or the memory limit. Whatever way it ends, every process the worker started is stopped with it.
    """
    import signal
    import tempfile
    import time

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # files, not pipes: processes the worker left behind cannot keep a pipe open and this call waiting
        proc = subprocess.Popen([python or sys.executable, script, "--worker", method, path], stdout=out,
                                stderr=err, text=True, start_new_session=True)
        t0, error, held = time.monotonic(), None, 0.0
        while proc.poll() is None:
            time.sleep(0.5)
            if memory_gb is not None:
                held = max(held, group_rss_gb(proc.pid))
                if held > memory_gb:
                    error = f"over {memory_gb:g} GB of memory after {time.monotonic() - t0:.0f} s"
            if timeout is not None and time.monotonic() - t0 > timeout:
                error = f"over {timeout:g} s"
            if error:
                break
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker, if still running, and whatever it started
        except ProcessLookupError:
            pass
        proc.wait()
        if error:
            return {"method": method, "error": error}
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        last = stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode} (killed: memory?)"]
        return {"method": method, "error": last[0][:120]}
    return json.loads(stdout.strip().splitlines()[-1])


def group_rss_gb(pgid: int) -> float:
    """Resident memory (GiB) of the processes of process group ``pgid``, summed (Linux; 0 elsewhere)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of /proc/PID/stat: the process group
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: resident pages
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024**3


def parse_or_work(ap, worker, *, metavar: tuple[str, str] = ("METHOD", "PATH")):
    """The other half of :func:`run_worker`: add ``--worker`` and ``--no-record`` to ``ap`` and parse.

    Called as a worker, runs ``worker(*args.worker)``, prints its JSON row and returns ``None``; otherwise
    returns the parsed arguments.
    """
    ap.add_argument("--worker", nargs=2, metavar=metavar)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return None
    if not args.no_record and importlib.util.find_spec("tabulate") is None:  # before hours of work, not after
        ap.error("recording the table in RESULTS.md needs tabulate: `pip install -e '.[bench]'` (or pass --no-record)")
    return args
