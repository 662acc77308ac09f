"""AnnData workflow: preprocess -> manifold -> gradients -> get, and recovery of known gradients."""

from __future__ import annotations

import numpy as np
import pytest
import scanpy as sc
from scipy import sparse

import genegrad as gg


def _cosines(adata, genes, scale):
    est = gg.get.gradients(adata, genes, scale=scale)
    true = gg.datasets.true_gradients(adata, genes, basis="X_pca")
    nt, ne = np.linalg.norm(true, axis=2), np.linalg.norm(est, axis=2)
    mask = nt >= 0.1 * np.percentile(nt, 95, axis=0)
    return ((est * true).sum(2) / np.maximum(nt * ne, 1e-12))[mask], est, true, mask


def _median_cosine(adata, genes, scale):
    cos, est, true, mask = _cosines(adata, genes, scale)
    return np.median(cos), est, true, mask


@pytest.mark.parametrize(("kind", "bar", "mean_bar", "wrong_bar"),
                         [("tree", 0.85, 0.7, 0.15), ("plane", 0.8, 0.7, 0.1), ("cycle", 0.85, 0.85, 0.08)])
def test_gradient_recovery_on_synthetic_manifolds(kind, bar, mean_bar, wrong_bar):
    # Loose bars for 1,500 cells at 1,500 UMIs/cell (the benchmark measures 3,000+ cells tightly): the best
    # scale's median cosine to the exact gradient; a random direction in the d-dim tangent plane scores ~0.
    # In 1-D a cosine is about +-1, so the median only tests the majority sign: the mean cosine and the share of
    # wrong signs are bounded too (measured at the best scale: tree 0.78 / 9%, plane 0.80 / 5%, cycle 0.94 / 2%).
    adata = gg.datasets.synthetic(kind, n_cells=1500, n_genes=400, depth=1500, rng=11)
    gg.pp.preprocess(adata, n_comps=20)
    gg.pp.manifold(adata)
    assert adata.uns["genegrad"]["n_dims"] == (2 if kind == "plane" else 1)
    genes = list(adata.var_names[adata.var["pattern"] != "noise"][:120])
    gg.tl.gradients(adata, genes, with_se=False)
    cosines = [_cosines(adata, genes, t)[0] for t in (2, 4, 8)]
    assert max(np.median(c) for c in cosines) >= bar
    assert max(np.mean(c) for c in cosines) >= mean_bar
    assert min(np.mean(c < 0) for c in cosines) <= wrong_bar
    # magnitudes: the estimate is the gradient of the log-normalised signal, compare with its truth
    _, est, _, mask = _median_cosine(adata, genes, 4)
    true1p = np.linalg.norm(gg.datasets.true_gradients(adata, genes, basis="X_pca", signal="log1p"), axis=2)
    ratio = np.median((np.linalg.norm(est, axis=2) / np.maximum(true1p, 1e-12))[mask])
    assert 0.6 < ratio < 1.5


def test_outputs_shapes_keys_and_dtypes(plane_adata):
    a = plane_adata
    info = a.uns["genegrad"]
    d, T = info["n_dims"], len(info["scales"])
    G = int(a.var["highly_variable"].sum())
    assert a.obsm["genegrad_gradients"].shape == (a.n_obs, G, d, T)
    assert a.obsm["genegrad_gradients"].dtype == np.float32
    assert a.obsm["genegrad_gradients_se"].shape == (a.n_obs, G, T)
    assert a.obsm["genegrad_frames"].shape == (a.n_obs, a.obsm["X_pca"].shape[1], d)
    assert "genegrad_connectivities" in a.obsp
    frames = a.obsm["genegrad_frames"].astype(np.float64)
    np.testing.assert_allclose(np.einsum("npd,npe->nde", frames, frames), np.broadcast_to(np.eye(d), (a.n_obs, d, d)),
                               atol=1e-5)


def test_get_bases_are_consistent(plane_adata):
    a = plane_adata
    genes = list(a.uns["genegrad"]["gradients"]["genes"][:3])
    tan = gg.get.gradients(a, genes, scale=2, basis="tangent")
    pca = gg.get.gradients(a, genes, scale=2, basis="X_pca")
    # the frames are orthonormal: lengths agree
    np.testing.assert_allclose(np.linalg.norm(tan, axis=2), np.linalg.norm(pca, axis=2), rtol=1e-4, atol=1e-6)
    # pushing forward into the PCA itself (as if it were an embedding) gives back the tangent projection of pca
    a.obsm["X_copy"] = a.obsm["X_pca"].copy()
    push = gg.get.gradients(a, genes, scale=2, basis="X_copy")
    cos = (push * pca).sum(2) / np.maximum(np.linalg.norm(push, axis=2) * np.linalg.norm(pca, axis=2), 1e-12)
    assert np.median(cos) > 0.95


def test_reuses_scanpy_neighbors():
    adata = gg.datasets.synthetic("cycle", n_cells=400, n_genes=100, rng=4)
    gg.pp.preprocess(adata, n_comps=10)
    sc.pp.neighbors(adata, n_neighbors=21, use_rep="X_pca")
    gg.pp.manifold(adata, neighbors_key="neighbors")
    assert adata.uns["genegrad"]["params"]["n_neighbors"] == 20
    assert adata.uns["genegrad"]["n_dims"] == 1


def test_deterministic(plane_adata):
    a = plane_adata
    b = plane_adata.copy()
    gg.pp.manifold(b, n_neighbors=25)
    gg.tl.gradients(b, store="obsm")
    np.testing.assert_array_equal(a.obsm["genegrad_gradients"], b.obsm["genegrad_gradients"])
    np.testing.assert_array_equal(a.obsm["genegrad_gradients_se"], b.obsm["genegrad_gradients_se"])


def test_copy_returns_new_and_leaves_input(plane_adata):
    a = plane_adata
    del a.obsm["genegrad_gradients"]
    out = gg.tl.gradients(a, list(a.var_names[:4]), copy=True, store="obsm")
    assert "genegrad_gradients" not in a.obsm
    assert out.obsm["genegrad_gradients"].shape[1] == 4


def test_h5ad_round_trip(plane_adata, tmp_path):
    import anndata as ad

    path = tmp_path / "g.h5ad"
    plane_adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    genes = list(back.uns["genegrad"]["gradients"]["genes"][:5])
    np.testing.assert_array_equal(gg.get.gradients(back, genes, scale=1), gg.get.gradients(plane_adata, genes, scale=1))
    back.obsm["X_e"] = back.obsm["X_pca"][:, :2]
    assert gg.get.gradients(back, genes, basis="X_e").shape == (back.n_obs, 5, 2)


def test_demo_cli(tmp_path):
    from genegrad.cli import main

    assert main(["demo", "-o", str(tmp_path), "--n-cells", "400"]) == 0
    assert (tmp_path / "summary.csv").exists()
    assert (tmp_path / "gradients.png").stat().st_size > 10_000
    assert (tmp_path / "patterns.png").stat().st_size > 10_000
    assert (tmp_path / "fates.png").stat().st_size > 10_000
    assert (tmp_path / "patterns.csv").exists()
    assert (tmp_path / "report" / "drivers.csv").exists()
    assert "Drivers of A" in (tmp_path / "report" / "index.html").read_text()


def test_backed_adata(plane_adata, tmp_path):
    import anndata as ad

    path = tmp_path / "b.h5ad"
    plane_adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    genes = list(plane_adata.var_names[:3])
    gg.tl.gradients(backed, genes, store="obsm")
    ref = gg.tl.gradients(plane_adata, genes, copy=True, store="obsm")
    np.testing.assert_array_equal(backed.obsm["genegrad_gradients"], ref.obsm["genegrad_gradients"])


def test_run_cli_with_backend_and_patterns(plane_adata, tmp_path):
    from genegrad.cli import main

    src = tmp_path / "in.h5ad"
    plane_adata.write_h5ad(src)
    out = tmp_path / "out.h5ad"
    genes = ",".join(plane_adata.var_names[:12])
    assert main(["run", str(src), "-o", str(out), "--genes", genes, "--backend", "torch", "--memory", "1",
                 "--patterns"]) == 0
    assert main(["run", str(src), "-o", str(tmp_path / "z.h5ad"), "--genes", genes, "--store", "zarr"]) == 0
    assert (tmp_path / "z.h5ad.gradients.zarr" / "gradients").exists()
    import anndata as ad

    back = ad.read_h5ad(out)
    assert "genegrad_gradients" not in back.obsm  # by default recomputed when read
    # after the h5ad round trip, the gradients recomputed when read are the ones a stored tensor holds
    stored = gg.tl.gradients(back, genes.split(",")[:3], store="obsm", copy=True)
    np.testing.assert_array_equal(gg.get.gradients(back, genes.split(",")[:3], scale=2),
                                  gg.get.gradients(stored, genes.split(",")[:3], scale=2))
    assert "genegrad_pattern" in back.var


def test_gradients_backends_agree(plane_adata):
    genes = list(plane_adata.var_names[:6])
    ref = gg.tl.gradients(plane_adata, genes, copy=True, store="obsm")
    tor = gg.tl.gradients(plane_adata, genes, backend="torch", copy=True, store="obsm")
    np.testing.assert_allclose(tor.obsm["genegrad_gradients"], ref.obsm["genegrad_gradients"], atol=1e-4)
    with pytest.raises(ValueError, match="`scheduler` is for backend='dask'"):
        gg.tl.gradients(plane_adata, genes, scheduler="tcp://nowhere:1")


def test_zarr_store_streams_and_reads_lazily(plane_adata, tmp_path):
    genes = list(plane_adata.var_names[:20])
    ref = gg.tl.gradients(plane_adata, genes, copy=True)
    gg.tl.gradients(plane_adata, genes, store="zarr", path=str(tmp_path / "g.zarr"))
    assert "genegrad_gradients" not in plane_adata.obsm  # the tensor lives on disk only
    assert plane_adata.uns["genegrad"]["gradients"]["store"] == "zarr"
    pick = [genes[7], genes[2]]
    for basis in ("tangent", "X_pca"):
        np.testing.assert_array_equal(gg.get.gradients(plane_adata, pick, scale=2, basis=basis),
                                      gg.get.gradients(ref, pick, scale=2, basis=basis))


def test_zarr_store_needs_a_path(plane_adata):
    with pytest.raises(ValueError, match="needs `path`"):
        gg.tl.gradients(plane_adata, store="zarr")
    with pytest.raises(ValueError, match="Expected `store`"):
        gg.tl.gradients(plane_adata, store="hdf5")


def test_same_input_same_output(plane_adata):
    # every random step is seeded: a second run from scratch gives identical arrays, bit for bit
    a, b = plane_adata.copy(), plane_adata.copy()
    for x in (a, b):
        gg.pp.manifold(x, n_neighbors=20)
        gg.tl.gradients(x, list(x.var_names[:10]), store="obsm")
    for key in ("genegrad_frames", "genegrad_operator", "genegrad_se_factors", "genegrad_gradients",
                "genegrad_gradients_se"):
        np.testing.assert_array_equal(a.obsm[key], b.obsm[key])


def test_memory_budget_counts_the_model_and_no_signal_copy(plane_adata, tmp_path):
    from genegrad.pp._manifold import load_model
    from genegrad.tl._signal import read_signal

    model = load_model(plane_adata)
    # the model's arrays, counted once each: at least the graph and the scale-0 operator
    floor = sum(m.data.nbytes + m.indices.nbytes for m in (model.diffusion_, model.operator_))
    assert model.nbytes >= floor
    genes = list(plane_adata.var_names)
    # every gene in order: the signal is read in place (CSR), no copy is held
    assert read_signal(plane_adata, None, np.arange(len(genes)), by_column=False) is plane_adata.X
    held = model.nbytes
    # a budget that holds the model but not one gene's work per chunk in flight is refused, and the message
    # says what took the memory
    with pytest.raises(MemoryError, match="model and signal"):
        gg.tl.gradients(plane_adata, genes, store="zarr", path=str(tmp_path / "a.zarr"), memory_gb=held / 2**30)
    # with room for the work, the call runs and streams every gene
    gg.tl.gradients(plane_adata, genes, store="zarr", path=str(tmp_path / "b.zarr"), memory_gb=held / 2**30 + 0.05)
    assert gg.get.gradients(plane_adata, genes[:3], scale=0).shape[1] == 3


def test_the_default_memory_budget_is_the_machines(plane_adata, monkeypatch):
    from genegrad.tl import _compute, _gradients

    gb = _compute.default_memory_gb()
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) / 1024**2
    assert gb == pytest.approx(avail / 2, rel=0.2)  # half of what is available (it moves a little meanwhile)
    monkeypatch.setattr(_gradients, "default_memory_gb", lambda: 1e-4)
    with pytest.raises(MemoryError, match=r"memory_gb=0\.0001"):
        gg.tl.gradients(plane_adata, list(plane_adata.var_names[:3]))
    gg.tl.gradients(plane_adata, list(plane_adata.var_names[:3]), memory_gb=1.0)  # an explicit budget still rules


def test_the_default_budget_without_proc_meminfo_is_half_the_free_pages(monkeypatch):
    import builtins
    import io
    import os

    from genegrad.tl._compute import default_memory_gb

    real_open = builtins.open

    def no_meminfo(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise OSError("no /proc here")
        return real_open(path, *args, **kwargs)

    def fake_meminfo(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            return io.StringIO("MemTotal:       16777216 kB\nMemFree:         1048576 kB\n"
                               "MemAvailable:    8388608 kB\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_meminfo)
    assert default_memory_gb() == pytest.approx(4.0)  # half of the 8 GiB available (not of the 1 GiB free)
    monkeypatch.setattr(builtins, "open", no_meminfo)
    monkeypatch.setattr(os, "sysconf", {"SC_AVPHYS_PAGES": 3 * 2**20, "SC_PAGE_SIZE": 4096}.__getitem__)
    assert default_memory_gb() == pytest.approx(6.0)  # 12 GiB free, half of it
    monkeypatch.delattr(os, "sysconf")
    assert default_memory_gb() == pytest.approx(4.0)  # the system does not say: 4 GB


def test_the_budget_and_the_progress_are_shown(plane_adata, monkeypatch, caplog, capsys):
    import logging

    from genegrad.tl import _gradients

    monkeypatch.setattr(_gradients, "default_memory_gb", lambda: 3.25)
    genes = list(plane_adata.var_names[:3])
    with caplog.at_level(logging.INFO, logger="genegrad"):  # at INFO the bar shows unless told not to
        gg.tl.gradients(plane_adata.copy(), genes, progress=False)
    assert "memory budget: 3.2 GB (half of the memory available; pass `memory_gb` to set it)" in caplog.messages
    assert "gradients" not in capsys.readouterr().err
    with caplog.at_level(logging.WARNING, logger="genegrad"):  # and at WARNING it shows when asked
        gg.tl.gradients(plane_adata.copy(), genes, progress=True)
    assert "gradients: 100%" in capsys.readouterr().err


def test_a_budget_without_room_for_the_stored_result_is_refused(plane_adata, caplog):
    """store='obsm' counts the result it keeps (gradients and standard errors, float32): a budget holding the
    model and that result, but nothing for the work, is refused; the call then says what it added."""
    import logging

    from genegrad.pp._manifold import load_model

    genes = list(plane_adata.var_names)
    a = plane_adata.copy()
    with caplog.at_level(logging.INFO, logger="genegrad"):
        gg.tl.gradients(a, genes, store="obsm", memory_gb=4.0)
    for name in ("genegrad_gradients", "genegrad_gradients_se"):
        assert f"added `adata.obsm['{name}']`" in caplog.messages
    assert "added `adata.var['genegrad_scale']`" in caplog.messages
    result = a.obsm["genegrad_gradients"].nbytes + a.obsm["genegrad_gradients_se"].nbytes
    held = load_model(a).nbytes  # every gene in order: the signal is read in place, no copy held
    with pytest.raises(MemoryError, match="result"):
        gg.tl.gradients(plane_adata.copy(), genes, store="obsm", memory_gb=(held + result) / 2**30)


def test_the_budget_counts_a_copy_of_the_signal_when_one_is_made(plane_adata, tmp_path, monkeypatch):
    """Every gene in order is read in place; every other gene is a CSR copy, and the budget's 'model and signal'
    is then the model plus that copy's bytes. Counted in bytes (the GB unit set to 1) to see every byte."""
    import re

    import genegrad.tl._gradients as tg
    from genegrad.pp._manifold import load_model

    monkeypatch.setattr(tg, "_GB", 1)
    model_bytes = load_model(plane_adata).nbytes

    def held(genes):
        with pytest.raises(MemoryError) as err:
            gg.tl.gradients(plane_adata.copy(), genes, store="zarr", path=str(tmp_path / "a.zarr"), memory_gb=1.0)
        return float(re.search(r"model and signal ([\d.]+) GB", str(err.value)).group(1))

    assert held(list(plane_adata.var_names)) == model_bytes
    copy = sparse.csr_matrix(plane_adata.X[:, ::2])
    assert held(list(plane_adata.var_names[::2])) == (
        model_bytes + copy.data.nbytes + copy.indices.nbytes + copy.indptr.nbytes)


def test_a_budget_of_exactly_what_is_needed_runs_in_chunks_of_one_gene(plane_adata, tmp_path, monkeypatch, caplog):
    """The need the refusal states is enough (a budget equal to it runs, one gene per chunk); ample room gives
    chunks of CHUNK_SIZE genes. Counted in bytes (the GB unit set to 1)."""
    import logging
    import re

    import genegrad.tl._gradients as tg

    monkeypatch.setattr(tg, "_GB", 1)
    genes = list(plane_adata.var_names)  # 200 genes: more than one chunk of CHUNK_SIZE
    with pytest.raises(MemoryError) as err:
        gg.tl.gradients(plane_adata.copy(), genes, store="zarr", path=str(tmp_path / "a.zarr"), memory_gb=1.0)
    need = float(re.search(r"need ([\d.]+) GB", str(err.value)).group(1))
    with caplog.at_level(logging.INFO, logger="genegrad"):
        gg.tl.gradients(plane_adata.copy(), genes, store="zarr", path=str(tmp_path / "b.zarr"), memory_gb=need)
        assert f"computing gradients of {len(genes)} genes at 5 scales (chunks of 1)" in caplog.messages
        gg.tl.gradients(plane_adata.copy(), genes, store="zarr", path=str(tmp_path / "c.zarr"), memory_gb=1e12)
    assert f"computing gradients of {len(genes)} genes at 5 scales (chunks of {tg.CHUNK_SIZE})" in caplog.messages


def test_log_mean_follows_what_the_data_record(plane_adata, caplog):
    import logging

    a = plane_adata
    genes = list(a.var_names[:4])
    # preprocessed (uns['log1p']): the log of the local mean, recorded, and not the smoothed log
    assert a.uns["genegrad"]["gradients"]["log_mean"] is True
    smoothed_log = gg.tl.gradients(a, genes, log_mean=False, store="obsm", copy=True)
    assert smoothed_log.uns["genegrad"]["gradients"]["log_mean"] is False
    assert not np.allclose(gg.get.gradients(a, genes, scale=2), gg.get.gradients(smoothed_log, genes, scale=2))
    # another layer, or no record of a log1p: the signal as it is
    a.layers["other"] = a.X.copy()
    with caplog.at_level(logging.INFO, logger="genegrad"):
        b = gg.tl.gradients(a, genes, layer="other", copy=True)
    assert b.uns["genegrad"]["gradients"]["log_mean"] is False
    assert "adata.layers['other']`: False" in caplog.text
    del a.uns["log1p"]
    assert gg.tl.gradients(a, genes, copy=True).uns["genegrad"]["gradients"]["log_mean"] is False
    with pytest.raises(TypeError, match=r"`log_mean` must be True, False or None .*not 'yes'"):
        gg.tl.gradients(a, genes, log_mean="yes")
    # asked for explicitly, on a signal that cannot be log1p of counts
    a.X = (a.X.toarray() if sparse.issparse(a.X) else a.X) - 1.0
    with pytest.raises(ValueError, match=r"`log_mean=True` needs `adata.X` to be log1p of normalised counts "
                                         r"\(values in \[0, 50\]\), but its values span \[-1, .*`log_mean=False`"):
        gg.tl.gradients(a, genes, log_mean=True)
    a.uns["log1p"] = {"base": None}
    assert gg.tl.gradients(a, genes, copy=True).uns["genegrad"]["gradients"]["log_mean"] is False  # negatives
    a.X = a.X + 52.0  # above 50: unlogged (and said so)
    with pytest.warns(gg.GenegradWarning, match="not log-transformed"):
        assert gg.tl.gradients(a, genes, copy=True).uns["genegrad"]["gradients"]["log_mean"] is False
    with pytest.warns(gg.GenegradWarning), pytest.raises(ValueError, match=r"span \[51, "):
        gg.tl.gradients(a, genes, log_mean=True)


def test_log_mean_for_the_tf_idf_of_peaks():
    adata = gg.datasets.synthetic("cycle", n_cells=300, n_genes=300, depth=300, library_sd=0.6, rng=0)
    gg.pp.preprocess_atac(adata, n_comps=10, min_cells=1)
    gg.pp.manifold(adata, use_rep="X_lsi", n_dims=1, n_neighbors=15)
    gg.tl.gradients(adata, list(adata.var_names[:3]))
    assert "log1p" not in adata.uns
    assert adata.uns["genegrad"]["gradients"]["log_mean"] is True
