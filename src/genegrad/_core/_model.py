"""``GradientModel``: graph, frames and gradient operator fitted once, applied to any number of signals."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from . import _backend, _columns, _dask, _frames, _graph, _operator
from ._threads import bounded, n_threads

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Diffusion steps applied to the coordinates before estimating the intrinsic dimension.
DIMENSION_SMOOTHING = 16
#: The intrinsic dimension is estimated on at most this many cells (a seeded random sample with its own kNN
#: graph), so that the estimate does not depend on N. With k fixed, neighbourhoods shrink as N grows while the
#: noise left after smoothing does not, and the full-data spectrum drifts upward: measured at 50,000 cells
#: (1,000 UMIs/cell), the tree (1-D) came out 2-D and the plane (2-D) 3-D on all cells, both right on 10,000.
DIMENSION_CELLS = 10_000


@dataclass
class GradientChunk:
    """Gradients of one block of signals at every scale.

    ``gradients`` is ``(N, g, d, T)`` in tangent coordinates; ``se`` is ``(N, g, T)``, the standard error of the
    gradient's length (root of the summed per-component variances), or ``None`` when not requested;
    ``signals`` is ``(N, g, T)``, the smoothed signals ``P^t F`` themselves, when requested.
    """

    start: int
    stop: int
    gradients: NDArray[np.float32]
    se: NDArray[np.float32] | None
    signals: NDArray[np.float32] | None = None


class GradientModel:
    """Multi-scale gradient estimator on a cell-state manifold.

    Hyper-parameters only in ``__init__``; :meth:`fit` builds the graph, the tangent frames and the sparse
    gradient operator from a representation ``Y`` (cells x p); :meth:`iter_gradients` applies the operator to
    signals in gene chunks, at every scale, with standard errors.

    Parameters
    ----------
    n_neighbors
        Neighbours per cell, for the graph and for each local fit.
    n_dims
        Tangent dimension ``d``; estimated from local PCA spectra of smoothed coordinates when ``None``.
    scales
        Diffusion times ``t``: gradients of ``P^t F``.
    n_smooth
        Diffusion steps applied to the coordinates before the local PCA (the tangent frames).
    frame_averaging
        Passes of neighbourhood averaging of the frames after the local PCA
        (:func:`~genegrad._core._frames.average_frames`).
    alpha
        Density normalisation of the diffusion operator (1 removes sampling density).
    quadratic
        Add the second-order monomials to each local fit (less bias on curved manifolds).
    ridge
        Relative ridge of each local fit.
    knn_method
        ``'auto'`` (exact up to 50,000 cells, ``'partition'`` above), ``'exact'``, ``'partition'`` (k-means
        partitions searched exactly, linear in N) or ``'pynndescent'``.
    n_probes
        Random probes for the noise propagation factors at scales ``t > 0``.
    random_state
        Seed for the approximate kNN searches and the probes.
    n_jobs
        Threads for the fit's per-cell blocks (local PCA, frame averaging, local fits; ``-1``: every core,
        ``None``: one); results do not depend on it.

    Notes
    -----
    At scale ``t`` the local fits regress ``P^t F`` on the coordinates ``P^t Y`` projected on the frames: one
    operator ``D_t`` per scale. Diffusion is linear, so a signal linear in ``Y`` stays linear in ``P^t Y`` with
    the same coefficients: linear signals are recovered exactly at every scale, and smoothing does not shrink
    the magnitudes of gradients (measured on the synthetic manifolds: magnitudes ~0.9-1.1 of the truth at
    ``t`` = 2-4, against 0.6-0.8 when every scale is regressed on the raw coordinates).
    """

    def __init__(
        self,
        n_neighbors: int = 30,
        n_dims: int | None = None,
        scales: Sequence[int] = (0, 1, 2, 4, 8),
        *,
        n_smooth: int = 3,
        frame_averaging: int = 1,
        alpha: float = 1.0,
        quadratic: bool = False,
        ridge: float = 1e-6,
        knn_method: str = "auto",
        n_probes: int = 64,
        random_state: int = 0,
        n_jobs: int | None = -1,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.n_dims = n_dims
        self.scales = scales
        self.n_smooth = n_smooth
        self.frame_averaging = frame_averaging
        self.alpha = alpha
        self.quadratic = quadratic
        self.ridge = ridge
        self.knn_method = knn_method
        self.n_probes = n_probes
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fitting
    def fit(self, Y: NDArray, *, neighbors: tuple[NDArray, NDArray] | None = None) -> GradientModel:
        """Build graph, frames and operator from ``Y``; ``neighbors`` = ``(indices, distances)`` reuses a graph."""
        Y = np.asarray(Y, dtype=np.float64)
        self.__dict__.pop("_ops_cache", None)  # products of an earlier fit
        if neighbors is None:
            idx, dist = _graph.knn(Y, self.n_neighbors, method=self.knn_method, random_state=self.random_state)
        else:
            idx, dist = neighbors
        w, K, P = _graph.diffusion_graph(idx, dist, alpha=self.alpha)
        self.diffusion_ = P
        self._set_order()
        smooth = self._smoother(P)
        Ys = smooth(Y, self.n_smooth)  # for the frames only
        if self.n_dims is None:
            d, spectrum = self._estimate_dimension(Y, Ys, idx, w, smooth)
        else:
            d, spectrum = int(self.n_dims), None
        # only the d leading directions are kept
        vals, frames = _frames.local_spectra(Ys, idx, w, n_vecs=d, n_jobs=self.n_jobs)
        for _ in range(self.frame_averaging):
            frames = _frames.average_frames(frames, idx, w, n_jobs=self.n_jobs)
        if spectrum is None:
            spectrum = np.median(vals / vals.sum(axis=1, keepdims=True), axis=0)
        fits = {}
        Yt, t_cur = Y, 0
        for t in sorted({0, *self.scales_}):
            Yt = smooth(Yt, t - t_cur)
            t_cur = t
            fits[t] = _operator.fit_local(Yt, frames, idx, w, quadratic=self.quadratic, ridge=self.ridge,
                                          n_jobs=self.n_jobs)
        self.knn_indices_ = idx
        self.knn_distances_ = dist
        self.connectivities_ = K
        self.diffusion_ = P
        self.coordinates_ = Ys.astype(np.float32)
        self.n_dims_ = d
        self.local_spectrum_ = spectrum
        self.local_variance_ = vals.astype(np.float32)
        self.frames_ = frames.astype(np.float32)
        self.fits_ = fits
        self._set_operators()
        self.se_factors_ = self._se_factors()
        return self

    @classmethod
    def from_fitted(
        cls,
        *,
        params: dict,
        knn_indices: NDArray,
        diffusion: sparse.spmatrix,
        frames: NDArray,
        fits: dict[int, _operator.LocalFits],
        se_factors: NDArray,
    ) -> GradientModel:
        """Rebuild a fitted model from stored arrays (what :func:`genegrad.pp.manifold` writes)."""
        model = cls(**params)
        model.knn_indices_ = np.asarray(knn_indices, dtype=np.int64)
        model.diffusion_ = sparse.csr_matrix(diffusion, dtype=np.float32)
        model.frames_ = np.asarray(frames, dtype=np.float32)
        model.n_dims_ = model.frames_.shape[2]
        model.fits_ = fits
        model.se_factors_ = np.asarray(se_factors, dtype=np.float32)
        model._set_order()
        model._set_operators()
        return model

    @property
    def nbytes(self) -> int:
        """Bytes held by the fitted arrays (graph, frames, operators, fits), each array counted once."""
        seen: set[int] = set()

        def size(obj: Any) -> int:
            if id(obj) in seen:
                return 0
            seen.add(id(obj))
            if isinstance(obj, np.ndarray):
                return 0 if obj.base is not None and id(obj.base) in seen else int(obj.nbytes)
            if sparse.issparse(obj):
                return sum(size(getattr(obj, a)) for a in ("data", "indices", "indptr") if hasattr(obj, a))
            if isinstance(obj, dict):
                return sum(size(v) for v in obj.values())
            if isinstance(obj, (list, tuple)):
                return sum(size(v) for v in obj)
            if hasattr(obj, "__dict__") and not isinstance(obj, type):
                return sum(size(v) for v in vars(obj).values())
            return 0

        return sum(size(v) for k, v in vars(self).items() if k != "_ops_cache")

    def _set_operators(self) -> None:
        d, idx = self.n_dims_, self.knn_indices_
        self.operators_ = {t: _operator.gradient_matrix(f.coef, idx, d) for t, f in self.fits_.items()}
        self.operator_ = self.operators_[0]
        # second-order rows only: the gradient rows of the design are ``operator_`` itself
        q = self.fits_[0].coef.shape[1]
        self.quadratic_operator_ = (_operator.design_matrix(self.fits_[0].coef[:, d:], idx) if q > d else None)
        self.weight_matrix_ = _operator.weight_matrix(self.fits_[0].weights, idx).astype(np.float32)

    def _smoother(self, P: sparse.csr_matrix):
        """``(X, steps) -> P^steps X``, the products in the graph's order (:meth:`_set_order`)."""
        o, inv = self._order, self._inverse
        Po = sparse.csr_matrix(P[o][:, o], dtype=np.float64)

        def smooth(X: NDArray, steps: int) -> NDArray[np.float64]:
            if steps <= 0:
                return np.asarray(X, dtype=np.float64)
            return _frames.smooth_coordinates(np.asarray(X)[o], Po, steps)[inv]

        return smooth

    def _estimate_dimension(
        self, Y: NDArray, Ys: NDArray, idx: NDArray, w: NDArray, smooth: Callable[[NDArray, int], NDArray]
    ) -> tuple[int, NDArray]:
        """Intrinsic dimension from the median local spectrum of coordinates smoothed ``DIMENSION_SMOOTHING`` steps.

        Up to ``DIMENSION_CELLS`` cells: on the fitted graph (``Ys`` already smoothed ``n_smooth`` steps). Above:
        on a seeded random sample of ``DIMENSION_CELLS`` cells with its own exact kNN graph and diffusion.
        """
        n = Y.shape[0]
        max_dim = min(10, Y.shape[1] - 1)
        if n <= DIMENSION_CELLS:
            Yd = smooth(Ys, max(DIMENSION_SMOOTHING - self.n_smooth, 0))
            spectra, _ = _frames.local_spectra(Yd, idx, w, values_only=True, n_jobs=self.n_jobs)
            return _frames.estimate_dimension(spectra, max_dim=max_dim)
        sub = np.sort(np.random.default_rng(self.random_state).choice(n, DIMENSION_CELLS, replace=False))
        Y_sub = Y[sub]
        idx_s, dist_s = _graph.knn(Y_sub, self.n_neighbors, method="exact")
        w_s, _, P_s = _graph.diffusion_graph(idx_s, dist_s, alpha=self.alpha)
        Yd = _frames.smooth_coordinates(Y_sub, P_s, DIMENSION_SMOOTHING)
        spectra, _ = _frames.local_spectra(Yd, idx_s, w_s, values_only=True, n_jobs=self.n_jobs)
        return _frames.estimate_dimension(spectra, max_dim=max_dim)

    def _set_order(self) -> None:
        """A cell order that keeps graph neighbours close in memory (reverse Cuthill-McKee).

        The sparse x dense products gather rows of the dense block at each cell's neighbours; in the
        original order these are scattered over the whole block, which stops fitting in cache beyond a few
        tens of thousands of cells. Products run in this order and results are put back (measured on 100,000
        cells, a profile: P @ X 5.0x and D @ X 3.9x faster).
        """
        order = _graph.locality_order(self.diffusion_)
        self._order = order
        self._inverse = np.argsort(order)

    @property
    def scales_(self) -> list[int]:
        """Sorted scales."""
        return sorted(int(t) for t in self.scales)

    def _se_factors(self) -> NDArray[np.float32]:
        """``(N, T)``: standard error of the gradient's length per unit of noise standard deviation.

        Under independent noise of variance ``sigma^2`` per cell, ``Var(beta_l(i)) = sigma^2 |row_il(D P^t)|^2``.
        Exact at ``t = 0``, estimated with Gaussian probes for ``t > 0``.
        """
        n, d = self.frames_.shape[0], self.n_dims_
        D = self.operator_
        out = np.empty((n, len(self.scales_)), dtype=np.float64)
        row2 = np.asarray(D.multiply(D).sum(axis=1)).ravel().reshape(n, d).sum(axis=1)
        rng = np.random.default_rng(self.random_state)
        Z = rng.standard_normal((n, self.n_probes)).astype(np.float32)[self._order]  # the graph's order
        ops = self._ops("numpy")
        t_cur = 0
        for j, t in enumerate(self.scales_):
            if t == 0:
                out[:, j] = row2
                continue
            while t_cur < t:
                Z = ops.mm("P", Z)
                t_cur += 1
            G = ops.mm(f"D{t}", Z).reshape(n, d, -1)
            out[self._order, j] = (G.astype(np.float64) ** 2).sum(axis=1).mean(axis=1)
        return np.sqrt(out).astype(np.float32)

    # --------------------------------------------------------------- applying
    def iter_gradients(
        self,
        F: NDArray | sparse.spmatrix,
        *,
        chunk_size: int = 64,
        with_se: bool = True,
        with_signals: bool = False,
        n_jobs: int | None = None,
        backend: str = "numpy",
        device: str | None = None,
        client: Any = None,
        reduce: Callable[[GradientModel, GradientChunk], Any] | None = None,
        scales: Sequence[int] | None = None,
        columns: NDArray | None = None,
        log_mean: bool = False,
    ) -> Iterator[Any]:
        """Yield gradients of the columns of ``F`` (cells x signals), ``chunk_size`` columns at a time, in order.

        ``columns``: increasing positions of the columns to stream (all by default); a CSR ``F`` is then read in
        place, without a copy of those columns.

        ``scales``: the diffusion times computed (a subset of :attr:`scales_`, in increasing order; all by
        default). Fewer scales save the products of the larger ones: one scale ``t`` costs ``t`` diffusion steps
        and one gradient product, instead of ``max(scales_)`` steps and ``len(scales_)`` products.

        ``backend``: ``'numpy'`` (scipy.sparse), ``'torch'`` (sparse CSR tensors on ``device``, CUDA when
        available) or ``'dask'`` (chunks as tasks on a ``dask.distributed`` ``client``, the model scattered to
        the workers once; a ``LocalCluster`` client is made when none is given). Results agree between
        backends to float32 round-off.

        With numpy, ``n_jobs`` threads (``None``: 1; ``-1``: every core) compute chunks concurrently; scipy's
        sparse products release the GIL. At most ``2 n_jobs`` chunks (dask: ``2 x`` the workers' threads) are
        in flight, so memory stays bounded whatever the consumer does, and the results do not depend on
        ``n_jobs``. Chunks of 32-64 signals are fastest on the CPU: the dense block stays in cache during the
        sparse products (profiled, not benchmarked, on 20,000 cells: 1.0 s per 256 signals at 32-64, 1.4 s at 128,
        2.6 s at 256).

        ``log_mean``: the columns are ``log1p`` of a mean-like signal ``m``; each gradient is that of the log of
        the smoothed mean, ``log1p(P^t m)`` (see :meth:`gradients_chunk`).

        ``reduce(model, chunk)``, when given, runs where the chunk was computed (the worker thread, or the dask
        worker) and its result is yielded instead of the chunk: per-gene summaries (descriptors, features) are
        computed in parallel and only they travel, never the ``N x g x d x T`` block. It must be picklable
        for dask (a module-level function or a ``functools.partial`` of one).
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
            msg = f"`chunk_size` must be a positive integer (signals per chunk), not {chunk_size!r}."
            raise ValueError(msg)
        if columns is not None:
            columns = _columns.checked_columns(columns, F.shape[1])
        if columns is not None and not _columns.readable_by_rows(F):
            F, columns = F[:, columns], None
        if sparse.issparse(F) and not _columns.readable_by_rows(F):
            F = sparse.csc_matrix(F)  # any other sparse format: columns are sliced
        n_sig = F.shape[1] if columns is None else len(columns)
        starts = range(0, n_sig, chunk_size)

        def block(s: int):
            e = min(s + chunk_size, n_sig)
            if columns is not None:
                return _columns.dense_columns_at(F, columns[s:e])
            if sparse.issparse(F) and F.format == "csr":  # read in place: no column-major copy of F
                return _columns.dense_columns(F, s, e)
            return F[:, s:e]

        scales = self._check_scales(scales)
        if backend == "dask":
            yield from _dask.iter_chunks(self, block, starts, client=client, with_se=with_se,
                                         with_signals=with_signals, reduce=reduce, scales=scales, log_mean=log_mean)
            return
        ops = self._ops(backend, device)

        def task(s: int) -> Any:
            chunk = self.gradients_chunk(block(s), start=s, with_se=with_se, with_signals=with_signals, ops=ops,
                                         scales=scales, log_mean=log_mean)
            return chunk if reduce is None else reduce(self, chunk)

        workers = n_threads(n_jobs) if backend == "numpy" else 1
        if workers == 1 or len(starts) == 1:
            yield from map(task, starts)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            yield from bounded(pool.submit, task, starts, 2 * workers)

    def _ops(self, backend: str, device: str | None = None):
        """The product backend, built once per (backend, device) and kept."""
        key = (backend, device)
        cache = self.__dict__.setdefault("_ops_cache", {})
        if key not in cache:
            o = self._order
            d = self.n_dims_

            def rows(m: int) -> NDArray:  # block rows (cell i, component l) -> (o[i], l)
                return (o[:, None] * m + np.arange(m)[None, :]).ravel()

            def square(M) -> sparse.csr_matrix:
                return sparse.csr_matrix(M[o][:, o], dtype=np.float32)

            mats = {"P": square(self.diffusion_), "W": square(self.weight_matrix_),
                    **{f"D{t}": sparse.csr_matrix(m[rows(d)][:, o], dtype=np.float32)
                       for t, m in self.operators_.items()}}
            if self.quadratic_operator_ is not None:
                q2 = self.quadratic_operator_.shape[0] // len(o)
                mats["Q"] = sparse.csr_matrix(self.quadratic_operator_[rows(q2)][:, o], dtype=np.float32)
            cache[key] = _backend.make_ops(mats, backend, device)
        return cache[key]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_ops_cache", None)  # backends hold device memory: rebuilt where the model lands
        return state

    def chunk_size(self, n_scales: int | None = None, *, max_bytes: int = 256 * 1024**2, most: int = 64) -> int:
        """Signals per chunk of :meth:`iter_gradients`, between 8 and ``most``: fewer on large data.

        One chunk's float32 gradients, standard errors and smoothed signals (``N x (d + 2)`` per scale) stay
        within ``max_bytes``; ``n_scales``: the scales computed (all by default).
        """
        T = len(self.scales_) if n_scales is None else int(n_scales)
        per_signal = self.frames_.shape[0] * T * (self.n_dims_ + 2) * 4
        return int(np.clip(max_bytes // per_signal, 8, most))

    def gradients_chunk(
        self,
        F: NDArray | sparse.spmatrix,
        *,
        start: int = 0,
        with_se: bool = True,
        with_signals: bool = False,
        ops: Any = None,
        scales: Sequence[int] | None = None,
        log_mean: bool = False,
    ) -> GradientChunk:
        """Gradients (and standard errors) of the columns of ``F`` at every scale (or at ``scales``, a subset).

        With ``log_mean``, the columns are ``log1p(m)`` and each gradient is that of ``log1p(P^t m)``, the log of
        the smoothed mean rather than the smoothed log (delta method): the gradient of ``m`` divided by
        ``1 + P^t m`` (``1 + P m`` at ``t = 0``, the neighbourhood's mean), the standard errors likewise, and the
        signals are the logs of those denominators. For sparse counts the mean of the log is flatter than the log
        of the mean.
        """
        ops = self._ops("numpy") if ops is None else ops
        X = F.toarray() if sparse.issparse(F) else np.asarray(F)
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float32)[self._order])  # products in the graph's order
        if log_mean:
            X = np.expm1(X)
        n, g = X.shape
        d = self.n_dims_
        scales = self._check_scales(scales)
        grads = np.empty((n, g, d, len(scales)), dtype=np.float32)
        signals = np.empty((n, g, len(scales)), dtype=np.float32) if with_signals else None
        se = None
        inv = self._inverse  # back to the cells' own order, one scale at a time
        X0, Xb, t_cur = X, ops.put(X), 0
        denom = np.ones((n, g, len(scales)), dtype=np.float32) if log_mean else None  # 1 + P^t m, cells' order
        one_step = None  # P m, made at t = 0 for the denominators and reused as the signal at t = 1
        for j, t in enumerate(scales):
            while t_cur < t:
                Xb = one_step if t_cur == 0 and one_step is not None else ops.mm("P", Xb)
                t_cur += 1
            G = ops.get(ops.mm(f"D{t}", Xb)).reshape(n, d, g)
            grads[:, :, :, j] = G[inv].transpose(0, 2, 1)
            if denom is not None:
                if t == 0:
                    one_step = ops.mm("P", Xb)
                mean = ops.get(Xb if t > 0 else one_step)[inv]
                denom[:, :, j] = 1.0 + mean  # > 0: expm1 > -1, and P averages
                grads[:, :, :, j] /= denom[:, :, j, None]
            if signals is not None:
                signals[:, :, j] = ops.get(Xb)[inv] if denom is None else np.log(denom[:, :, j])
            if t == 0 and with_se:
                sigma2 = self._noise_variance(ops, X0, G)
        if with_se and 0 not in scales:
            sigma2 = self._noise_variance(ops, X0, ops.get(ops.mm("D0", ops.put(X0))).reshape(n, d, g))
        if with_se:
            factors = self.se_factors_[:, [self.scales_.index(t) for t in scales]]
            se = (np.sqrt(sigma2[inv])[:, :, None] * factors[:, None, :]).astype(np.float32, copy=False)
            if denom is not None:
                se /= denom
        return GradientChunk(start=start, stop=start + g, gradients=grads, se=se, signals=signals)

    def _check_scales(self, scales: Sequence[int] | None) -> list[int]:
        if scales is None:
            return list(self.scales_)
        scales = [int(t) for t in scales]
        if not scales or scales != sorted(set(scales)) or not set(scales) <= set(self.scales_):
            msg = f"Expected `scales` in increasing order, a subset of the model's {self.scales_}, got {scales}."
            raise ValueError(msg)
        return scales

    def _noise_variance(self, ops, X: NDArray[np.float32], grad0: NDArray[np.float32]) -> NDArray[np.float32]:
        """Noise variance of every signal around every cell, ``(N, g)``.

        From the weighted residual sum of squares of each local fit at scale 0, ``E[RSS_i] = sigma^2 dof_i``
        (exact for independent noise, see :class:`~genegrad._core._operator.LocalFits`), pooled over the
        neighbourhood by one diffusion step so that it is stable and independent of the cell's own gradient.
        ``grad0`` ``(N, d, g)`` is the scale-0 gradient, the first ``d`` fitted coefficients.
        """
        n, g = X.shape
        form, inv_dof = self._residual_terms()
        q = form.shape[1]
        # weighted sums of f_j and f_j^2 over each neighbourhood, in one product
        S = ops.get(ops.mm("W", ops.put(np.concatenate([X, X * X], axis=1))))
        theta = grad0
        if q > self.n_dims_:
            quad = ops.get(ops.mm("Q", ops.put(X))).reshape(n, q - self.n_dims_, g)
            theta = np.concatenate([theta, quad], axis=1)
        # minus the fitted part and twice the ridge, theta^T (B^T W B + 2 ridge) theta, in one compiled pass
        rss = np.empty((n, g), dtype=np.float32)
        _operator.residual_variance(np.ascontiguousarray(S), X, np.ascontiguousarray(theta), form, inv_dof, rss)
        return ops.get(ops.mm("P", ops.put(rss)))

    def _residual_terms(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The scale-0 fits' ``B^T W B + 2 diag(ridge)`` ``(N, q, q)`` and ``1 / dof`` ``(N,)``, in the graph's order.

        Made once per fit and kept with the products.
        """
        cache = self.__dict__.setdefault("_ops_cache", {})
        if "residual" not in cache:
            fits, o = self.fits_[0], self._order
            form = fits.gram[o].astype(np.float64)
            q = form.shape[1]
            form[:, np.arange(q), np.arange(q)] += 2 * fits.ridge[o]
            cache["residual"] = (form, 1.0 / fits.dof[o])
        return cache["residual"]

    def gradients(
        self, F: NDArray | sparse.spmatrix, *, with_se: bool = True, backend: str = "numpy",
        device: str | None = None, scales: Sequence[int] | None = None, log_mean: bool = False,
    ) -> GradientChunk:
        """Gradients of all columns of ``F`` at once (small problems; stream with :meth:`iter_gradients`)."""
        if backend == "dask":
            msg = "backend='dask' streams chunks: use `iter_gradients(..., backend='dask')`."
            raise ValueError(msg)
        return self.gradients_chunk(F, with_se=with_se, ops=self._ops(backend, device), scales=scales,
                                    log_mean=log_mean)

    def smooth(self, X: NDArray, t: int, *, n_jobs: int | None = None) -> NDArray[np.float32]:
        """``P^t X`` for dense ``X`` (cells x signals), in the graph's memory order (see :meth:`_set_order`).

        ``n_jobs`` threads smooth separate blocks of columns (the result does not depend on it).
        """
        ops = self._ops("numpy")
        Xb = np.asarray(X, dtype=np.float32)[self._order]
        if Xb.ndim == 1:
            Xb = Xb[:, None]

        def steps(block: NDArray) -> NDArray:
            block = np.ascontiguousarray(block)
            for _ in range(int(t)):
                block = ops.mm("P", block)
            return np.asarray(block)

        workers = min(n_threads(n_jobs), Xb.shape[1])
        if workers <= 1:
            out = steps(Xb)
        else:  # scipy's sparse products release the GIL; each column's sums are the same in any block. Not
            # `_threads.for_blocks`: its BLAS limit is process-wide, and the fate chain's solve runs beside this
            # on another thread (its BLAS reductions then change with the timing: results moved by an ulp)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                out = np.concatenate(list(pool.map(steps, np.array_split(Xb, workers, axis=1))), axis=1)
        return out[self._inverse].reshape(np.shape(X))

    def to_ambient(self, tangent: NDArray) -> NDArray:
        """Map tangent-coordinate vectors ``(N, ..., d)`` to the representation's coordinates ``(N, ..., p)``."""
        n = tangent.shape[0]
        flat = tangent.reshape(n, -1, self.n_dims_)
        out = np.einsum("npd,ngd->ngp", self.frames_, flat)
        return out.reshape(*tangent.shape[:-1], self.frames_.shape[1])
