"""genegrad's environment leaves the user's scanpy working: the kNN graph on 10,000 cells (pynndescent's path)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scanpy as sc


def test_scanpy_neighbors_on_ten_thousand_cells():
    # scanpy switches from its exact search to pynndescent above 4,096 cells; pynndescent 0.7 returns a
    # csr_array that scanpy 1.11 cannot read ('getnnz'), which pyproject.toml's pin avoids
    rng = np.random.default_rng(0)
    a = ad.AnnData(rng.normal(size=(10_000, 10)).astype(np.float32))
    sc.pp.neighbors(a, n_neighbors=15, use_rep="X", random_state=0)
    D = a.obsp["distances"]
    assert D.shape == (10_000, 10_000)
    assert np.diff(D.indptr).min() >= 14  # at least its 14 neighbours besides itself in every row
    # the nearest neighbour found is the exact one for nearly every cell (approximate search)
    X = a.X[:200]
    exact = np.argsort(((X[:, None, :] - a.X[None, :, :]) ** 2).sum(-1), axis=1)[:, 1]
    found = []
    for i in range(200):
        idx, dist = D.indices[D.indptr[i]:D.indptr[i + 1]], D.data[D.indptr[i]:D.indptr[i + 1]]
        keep = idx != i  # scanpy may store the cell itself
        found.append(idx[keep][np.argmin(dist[keep])])
    assert np.mean(found == exact) >= 0.95
