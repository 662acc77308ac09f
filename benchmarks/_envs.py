"""Environments of their own for peers whose dependencies clash with genegrad's (GSPA needs TensorFlow)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ENVS = Path(__file__).with_name(".envs")
#: What each peer's environment installs (from PyPI, once).
PEERS = {"gspa": ["tensorflow-cpu>=2.16", "gspa>=1.1"]}


def peer_python(name: str) -> str:
    """The Python of ``name``'s environment: ``$GENEGRAD_<NAME>_PYTHON``, or ``benchmarks/.envs/<name>``, made once."""
    given = os.environ.get(f"GENEGRAD_{name.upper()}_PYTHON")
    if given:
        return given
    py = ENVS / name / "bin" / "python"
    if not py.exists():
        print(f"Making {name}'s environment in {ENVS / name} (once; it installs {PEERS[name]})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ENVS / name)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEERS[name]], check=True)
    return str(py)


def peer_version(name: str, package: str) -> str:
    """``package``'s version in ``name``'s environment."""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run([peer_python(name), "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def gspa_embedding(cells, signals, *, seed: int = 0, condensation: int = 3000) -> tuple[np.ndarray, float]:
    """GSPA's gene embeddings ``(genes, 128)`` and its wall time (s), run in GSPA's environment.

    ``cells``: cells x features, GSPA's cell graph is built from them; ``signals``: genes x cells;
    ``condensation``: GSPA's ``condensation_threshold`` (larger data are condensed to about that many nodes).
    """
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        np.savez(src, cells=np.asarray(cells, np.float32), signals=np.asarray(signals, np.float32), seed=seed,
                 condensation=condensation)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run([peer_python("gspa"), str(Path(__file__).with_name("gspa_worker.py")), str(src),
                               str(dst)], env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            msg = f"GSPA failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
            raise RuntimeError(msg)
        out = np.load(dst)
        return out["embedding"], float(out["seconds"])
