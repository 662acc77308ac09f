"""Gene pattern families: log-mean functions of the latent manifold with exact gradients.

Every gene's log-mean is ``eta_g = base_g + h_g(w)`` on the ambient coordinates ``w`` of its manifold (on the
tree, a function of pseudotime and segment). Parameters live in plain arrays so that they round-trip through
h5ad and the truth can be recomputed for any subset of cells or genes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._manifolds import TREE_SEGMENTS, TREE_T_MAX, tree_ancestors

if TYPE_CHECKING:
    from numpy.typing import NDArray

PATTERNS = ("ramp", "bump", "saddle", "periodic", "branch_switch", "transient", "noise")

#: Share of genes per pattern class, by manifold dimension (saddles need two dimensions).
MIX_2D = {"ramp": 0.15, "bump": 0.15, "saddle": 0.1, "periodic": 0.1, "branch_switch": 0.1, "transient": 0.1,
          "noise": 0.3}
MIX_1D = {"ramp": 0.15, "bump": 0.15, "periodic": 0.1, "branch_switch": 0.2, "transient": 0.1, "noise": 0.3}


def gene_names(pattern) -> list[str]:
    """The simulated genes' names, ``g<index>_<class>``: how the truth finds a gene after subsetting."""
    return [f"g{j}_{p}" for j, p in enumerate(pattern)]


def draw_genes(
    kind: str, n_genes: int, w: NDArray, rng: np.random.Generator, segment: NDArray | None = None
) -> dict[str, NDArray]:
    """Draw the pattern class and parameters of every gene."""
    m = w.shape[1]
    mix = MIX_1D if kind in ("tree", "cycle") else MIX_2D
    names = list(mix)
    counts = np.floor(np.array(list(mix.values())) * n_genes).astype(int)
    counts[names.index("noise")] += n_genes - counts.sum()
    pattern = np.repeat(np.array(names, dtype=object), counts)
    pattern = pattern[rng.permutation(n_genes)]

    def unit(size: tuple[int, int]) -> NDArray:
        v = rng.standard_normal(size)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    v = unit((n_genes, m))
    e2 = v - unit((n_genes, m))  # made orthogonal to v below
    e2 -= (e2 * v).sum(axis=1, keepdims=True) * v
    e2 /= np.maximum(np.linalg.norm(e2, axis=1, keepdims=True), 1e-12)
    proj = w @ v.T  # (N, G): range of each direction over the sample
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    centre_cell = rng.integers(0, w.shape[0], n_genes)
    params = {
        "pattern": pattern.astype(str),
        "base": rng.normal(0.0, 1.0, n_genes),
        "amplitude": rng.uniform(1.0, 2.0, n_genes) * rng.choice([-1.0, 1.0], n_genes),
        "direction": v,
        "direction2": e2,
        "centre": w[centre_cell],
        "centre_segment": (segment[centre_cell] if segment is not None else np.zeros(n_genes)).astype(int),
        "low": lo,
        "high": hi,
        "width": rng.uniform(0.25, 0.4, n_genes),
        "frequency": rng.uniform(1.0, 1.6, n_genes),
        "phase": rng.uniform(0, 2 * np.pi, n_genes),
        "threshold": rng.uniform(0.35, 0.65, n_genes),
        "target_segment": rng.integers(1, len(TREE_SEGMENTS), n_genes),
    }
    # bumps are peaks; switches and transients mostly rise
    for name in ("bump", "transient", "branch_switch"):
        sel = pattern == name
        params["amplitude"][sel] = np.abs(params["amplitude"][sel])
    if kind == "tree":
        # centres of bumps on terminal branches, transients on the trunk
        term = [s for s, (_, _, _, f) in TREE_SEGMENTS.items() if f is not None]
        params["centre_segment"] = rng.choice(term, n_genes)
        mid = np.array([np.mean(TREE_SEGMENTS[s][1:3]) for s in params["centre_segment"]])
        params["centre"] = mid[:, None] + rng.uniform(-0.2, 0.2, (n_genes, 1))
    return params


def evaluate(
    kind: str, params: dict[str, NDArray], w: NDArray, segment: NDArray | None = None
) -> tuple[NDArray, NDArray]:
    """``h_g(w)`` ``(N, G)`` and its gradient in ambient coordinates ``(N, G, m)`` (pseudotime on the tree)."""
    if kind == "tree":
        return _evaluate_tree(params, w[:, 0], np.asarray(segment))
    n, m = w.shape
    G = len(params["pattern"])
    h = np.zeros((n, G))
    grad = np.zeros((n, G, m))
    pat = np.asarray(params["pattern"]).astype(str)
    a = params["amplitude"]
    v, e2, c = params["direction"], params["direction2"], params["centre"]
    lo, hi = params["low"], params["high"]
    span = np.maximum(hi - lo, 1e-9)
    x = (w @ v.T - lo) / span  # (N, G) in [0, 1] along each gene's direction
    for g in range(G):
        p, ag = pat[g], a[g]
        dx = v[g] / span[g]  # gradient of x_g in w
        if p == "ramp":
            h[:, g] = ag * (2 * x[:, g] - 1)
            grad[:, g] = 2 * ag * dx
        elif p == "bump":
            r = params["width"][g]
            diff = w - c[g]
            val = ag * np.exp(-(diff**2).sum(axis=1) / (2 * r * r))
            h[:, g] = val
            grad[:, g] = -val[:, None] * diff / (r * r)
        elif p == "saddle":
            diff = w - c[g]
            s1, s2 = diff @ v[g], diff @ e2[g]
            h[:, g] = ag * s1 * s2
            grad[:, g] = ag * (s2[:, None] * v[g] + s1[:, None] * e2[g])
        elif p == "periodic":
            om, ph = params["frequency"][g], params["phase"][g]
            if kind == "cycle":  # harmonics of the angle
                k = np.rint(1 + om)
                th = np.arctan2(w[:, 1], w[:, 0])
                dth = np.column_stack([-w[:, 1], w[:, 0]]) / (w**2).sum(axis=1, keepdims=True)
                h[:, g] = ag * np.sin(k * th + ph)
                grad[:, g] = (ag * k * np.cos(k * th + ph))[:, None] * dth
            else:
                arg = 2 * np.pi * om * x[:, g] + ph
                h[:, g] = ag * np.sin(arg)
                grad[:, g] = (ag * 2 * np.pi * om * np.cos(arg))[:, None] * dx
        elif p == "branch_switch":
            z = (x[:, g] - params["threshold"][g]) / 0.08
            s = 1 / (1 + np.exp(-z))
            h[:, g] = ag * s
            grad[:, g] = (ag * s * (1 - s) / 0.08)[:, None] * dx
        elif p == "transient":
            r = 0.12
            z = x[:, g] - params["threshold"][g]
            val = ag * np.exp(-z * z / (2 * r * r))
            h[:, g] = val
            grad[:, g] = (-val * z / (r * r))[:, None] * dx
    return h, grad


def proportions(eta: NDArray, params: dict[str, NDArray]) -> NDArray:
    """Expected share of each gene in a cell's counts ``(N, G)`` from the log-means ``eta``.

    The flat genes (``params['flat']``: the noise genes that carry no fate bias) keep a fixed share: their
    ``exp(base)`` among all genes' ``exp(base)``, split by ``exp(base)``. The other genes share the rest by
    ``softmax(eta)`` among themselves. So the composition effect (genes rising somewhere take counts from the
    others) falls on the structured genes only, and a noise gene's expected normalised expression is constant.
    Data simulated before the flat genes existed have no ``'flat'`` entry: one softmax over every gene.
    """
    flat = params.get("flat")
    out = np.empty_like(eta, dtype=np.float64)
    if flat is None or not np.any(flat):
        out[:] = np.exp(eta - eta.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
        return out
    flat = np.asarray(flat, dtype=bool)
    eb = np.exp(params["base"] - params["base"].max())
    share = eb[flat].sum() / eb.sum()
    out[:, flat] = share * eb[flat] / eb[flat].sum()
    rest = eta[:, ~flat]
    e = np.exp(rest - rest.max(axis=1, keepdims=True))
    out[:, ~flat] = (1.0 - share) * e / e.sum(axis=1, keepdims=True)
    return out


def log_proportion_gradients(grad_eta: NDArray, pi: NDArray, params: dict[str, NDArray]) -> NDArray:
    """Gradients of ``log pi`` ``(N, G, d)`` from those of the log-means ``eta`` and the shares ``pi``.

    The composition rule of :func:`proportions`: a flat gene's share is fixed (zero gradient); the others'
    is a softmax among themselves, ``grad log pi_g = grad eta_g - sum_h pi'_h grad eta_h`` with ``pi'`` their
    shares renormalised among them (among every gene for data without flat genes).
    """
    flat = np.asarray(params.get("flat", np.zeros(pi.shape[1])), dtype=bool)
    rest = ~flat
    pi_rest = pi[:, rest] / pi[:, rest].sum(axis=1, keepdims=True)
    out = grad_eta - np.einsum("ng,ngd->nd", pi_rest, grad_eta[:, rest])[:, None, :]
    out[:, flat] = 0.0
    return out


def _soft_ramp(x: NDArray) -> tuple[NDArray, NDArray]:
    """Zero below 0, then ``x^2 / (x + 0.25)`` scaled to 1 at ``x = 1``: smooth switch-on with its slope."""
    xp = np.maximum(x, 0)
    norm = 1 / 1.25
    val = xp**2 / (xp + 0.25) / norm
    slope = (xp**2 + 0.5 * xp) / (xp + 0.25) ** 2 / norm
    return val, np.where(x > 0, slope, 0.0)


def _evaluate_tree(params: dict[str, NDArray], tau: NDArray, segment: NDArray) -> tuple[NDArray, NDArray]:
    n = tau.shape[0]
    G = len(params["pattern"])
    h = np.zeros((n, G))
    grad = np.zeros((n, G, 1))
    pat = np.asarray(params["pattern"]).astype(str)
    a = params["amplitude"]
    anc = {s: set(tree_ancestors(s)) for s in TREE_SEGMENTS}
    for g in range(G):
        p, ag = pat[g], a[g]
        if p == "ramp":
            h[:, g] = ag * (2 * tau / TREE_T_MAX - 1)
            grad[:, g, 0] = 2 * ag / TREE_T_MAX
        elif p == "periodic":
            om, ph = params["frequency"][g] * 1.5, params["phase"][g]
            arg = 2 * np.pi * om * tau / TREE_T_MAX + ph
            h[:, g] = ag * np.sin(arg)
            grad[:, g, 0] = ag * 2 * np.pi * om / TREE_T_MAX * np.cos(arg)
        elif p == "transient":
            r, t0 = 0.15, 0.3 + params["threshold"][g] * 1.2
            z = tau - t0
            val = ag * np.exp(-z * z / (2 * r * r))
            h[:, g] = val
            grad[:, g, 0] = -val * z / (r * r)
        elif p == "branch_switch":
            tgt = int(params["target_segment"][g])
            on = np.array([tgt in anc[s] for s in segment])
            val, slope = _soft_ramp(tau - TREE_SEGMENTS[tgt][1])
            h[:, g] = np.where(on, ag * val, 0.0)
            grad[:, g, 0] = np.where(on, ag * slope, 0.0)
        elif p == "bump":
            cs, tc, r = int(params["centre_segment"][g]), float(params["centre"][g, 0]), 0.18
            # tree distance to the centre: along the path when on it, through the branch point otherwise
            on_path = np.array([s in anc[cs] or cs in anc[s] for s in segment])
            split = np.array([max(TREE_SEGMENTS[x][2] for x in (anc[s] & anc[cs]) - {s, cs})
                              if not (s in anc[cs] or cs in anc[s]) else 0.0 for s in segment])
            dist = np.where(on_path, tau - tc, (tau - split) + (tc - split))
            ddist = np.where(on_path, 1.0, 1.0)
            val = ag * np.exp(-dist * dist / (2 * r * r))
            h[:, g] = val
            grad[:, g, 0] = -val * dist / (r * r) * ddist
    return h, grad
