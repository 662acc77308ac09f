from __future__ import annotations

import os

import numpy as np
import pytest

import genegrad as gg


@pytest.fixture(scope="session")
def _plane_adata():
    adata = gg.datasets.synthetic("plane", n_cells=600, n_genes=200, depth=2000, rng=3)
    gg.pp.preprocess(adata, n_comps=15)
    gg.pp.manifold(adata, n_neighbors=25)
    gg.tl.gradients(adata, store="obsm")  # the tensor itself, read by tests of its layout
    return adata


@pytest.fixture
def plane_adata(_plane_adata):
    """Preprocessed synthetic plane with manifold and gradients (a fresh copy per test)."""
    return _plane_adata.copy()


@pytest.fixture(scope="module")
def tree():
    """A three-fate synthetic tree with its manifold and named terminal states (`obs['terminal']`), for the fate
    and detection tests: one per test module, shared by its tests, which copy it before changing it."""
    adata = gg.datasets.synthetic("tree", n_cells=1500, n_genes=300, depth=2000, rng=2)
    gg.pp.preprocess(adata, n_comps=20)
    gg.pp.manifold(adata, n_neighbors=20)
    adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    return adata


def flat_plane(n: int = 800, p: int = 8, seed: int = 0):
    """Points on a 2-D plane rotated into R^p, with their latent coordinates and the rotation."""
    rng = np.random.default_rng(seed)
    Z = rng.uniform(-1, 1, (n, 2))
    Q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    Y = np.c_[Z, np.zeros((n, p - 2))] @ Q.T
    return Z, Y, Q


def under_key(adata, key: str):
    """A copy with every genegrad key (manifold and results, ``genegrad_*`` and ``uns['genegrad']``) renamed to the
    prefix ``key``, as if ``pp.manifold(key_added=key)`` had made it."""
    a = adata.copy()
    for slot in ("obs", "obsm", "obsp", "var", "varm"):
        store = getattr(a, slot)
        for name in [n for n in store.keys() if n.startswith("genegrad_")]:
            store[key + name[len("genegrad"):]] = store[name]
            del store[name]
    a.uns[key] = a.uns.pop("genegrad")
    return a


def optional(module: str):
    """Import an optional dependency; skip without it, except in CI (``GENEGRAD_REQUIRE_OPTIONAL``), where it must
    be installed: a missing extra then fails instead of silently skipping."""
    if os.environ.get("GENEGRAD_REQUIRE_OPTIONAL"):
        return __import__(module)
    return pytest.importorskip(module, reason=f"{module} not installed (`pip install '.[gpu,dask]'`)")
