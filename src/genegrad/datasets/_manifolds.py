"""Latent manifolds of the synthetic data: sampling, embedding ``w = phi(u)`` and its Jacobian."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Intrinsic dimension of each manifold kind.
LATENT_DIM = {"plane": 2, "swissroll": 2, "curved_sheet": 2, "cycle": 1, "tree": 1, "cube": 3}

# tree: segment -> (parent, start time, end time, fate label or None)
TREE_SEGMENTS = {
    0: (-1, 0.0, 1.0, None),
    1: (0, 1.0, 2.0, "A"),
    2: (0, 1.0, 1.5, None),
    3: (2, 1.5, 2.5, "B"),
    4: (2, 1.5, 2.5, "C"),
}
TREE_FATES = ("A", "B", "C")
TREE_T_MAX = 2.5


def tree_ancestors(seg: int) -> list[int]:
    """Segments from the root to ``seg``, inclusive."""
    path = [seg]
    while TREE_SEGMENTS[path[-1]][0] >= 0:
        path.append(TREE_SEGMENTS[path[-1]][0])
    return path[::-1]


def tree_fates(seg: int) -> list[str]:
    """Fates reachable from a segment."""
    return [f for s, (_, _, _, f) in TREE_SEGMENTS.items() if f is not None and seg in tree_ancestors(s)]


#: Volume of the latent box that :func:`sample_latent` draws from uniformly (the tree: its segments' lengths).
LATENT_VOLUME = {"plane": 4.0, "curved_sheet": 4.0, "cube": 8.0, "swissroll": 6 * np.pi, "cycle": 2 * np.pi,
                 "tree": float(sum(end - start for _, start, end, _ in TREE_SEGMENTS.values()))}


def volume(kind: str, n_samples: int = 200_000) -> float:
    """Length, area or volume of the manifold in its ambient coordinates ``w``.

    ``LATENT_VOLUME x mean sqrt(det J^T J)`` over a fixed uniform sample (Monte Carlo, seed 0; exact for the flat
    kinds). Cells are uniform in the latent box, so cells per unit volume compare manifolds of different size:
    the swiss roll (12.6) at 3,000 cells is as sparse as the plane (4) at about 950.
    """
    u = sample_latent(kind, n_samples, np.random.default_rng(0))["u"]
    J = embed(kind, u)[1]
    return LATENT_VOLUME[kind] * float(np.sqrt(np.linalg.det(np.einsum("npd,npe->nde", J, J))).mean())


def sample_latent(kind: str, n: int, rng: np.random.Generator) -> dict[str, NDArray]:
    """Latent coordinates ``u`` (and, for the tree, segment and pseudotime)."""
    if kind in ("plane", "curved_sheet"):
        return {"u": rng.uniform(-1, 1, (n, 2))}
    if kind == "cube":
        return {"u": rng.uniform(-1, 1, (n, 3))}
    if kind == "swissroll":
        return {"u": np.column_stack([rng.uniform(1.5 * np.pi, 4.5 * np.pi, n), rng.uniform(-1, 1, n)])}
    if kind == "cycle":
        return {"u": rng.uniform(0, 2 * np.pi, (n, 1))}
    if kind == "tree":
        segs = np.array(list(TREE_SEGMENTS))
        lengths = np.array([TREE_SEGMENTS[s][2] - TREE_SEGMENTS[s][1] for s in segs])
        seg = rng.choice(segs, size=n, p=lengths / lengths.sum())
        start = np.array([TREE_SEGMENTS[s][1] for s in seg])
        end = np.array([TREE_SEGMENTS[s][2] for s in seg])
        tau = start + rng.uniform(0, 1, n) * (end - start)
        return {"u": tau[:, None], "segment": seg}
    msg = f"Expected `kind` in {sorted(LATENT_DIM)}, got {kind!r}."
    raise ValueError(msg)


def embed(kind: str, u: NDArray) -> tuple[NDArray, NDArray]:
    """Ambient coordinates ``w = phi(u)`` ``(N, m)`` and Jacobian ``dphi/du`` ``(N, m, d)``."""
    n = u.shape[0]
    if kind in ("plane", "cube", "tree"):
        d = u.shape[1]
        return u.copy(), np.broadcast_to(np.eye(d), (n, d, d)).copy()
    if kind == "curved_sheet":
        c = 0.8
        w = np.column_stack([u[:, 0], u[:, 1], c * (u[:, 0] ** 2 + u[:, 1] ** 2)])
        J = np.zeros((n, 3, 2))
        J[:, 0, 0] = 1
        J[:, 1, 1] = 1
        J[:, 2, 0] = 2 * c * u[:, 0]
        J[:, 2, 1] = 2 * c * u[:, 1]
        return w, J
    if kind == "swissroll":
        s = 4.5 * np.pi
        th, h = u[:, 0], u[:, 1]
        w = np.column_stack([th * np.cos(th) / s, h, th * np.sin(th) / s])
        J = np.zeros((n, 3, 2))
        J[:, 0, 0] = (np.cos(th) - th * np.sin(th)) / s
        J[:, 2, 0] = (np.sin(th) + th * np.cos(th)) / s
        J[:, 1, 1] = 1
        return w, J
    if kind == "cycle":
        th = u[:, 0]
        w = np.column_stack([np.cos(th), np.sin(th)])
        J = np.column_stack([-np.sin(th), np.cos(th)])[:, :, None]
        return w, J
    msg = f"Expected `kind` in {sorted(LATENT_DIM)}, got {kind!r}."
    raise ValueError(msg)
