"""The scale recommended for each gene (Lepski's rule) and standard errors widened by the smoothing bias."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: A coarser scale is kept while its gradient stays within ``KAPPA`` times the 95% ball of every finer one ...
KAPPA = 1.0
#: ... in all but this share of the cells whose finer-scale standard error is not zero.
ALPHA = 0.2


def ball_factor(d: int) -> float:
    """``sqrt(chi2_0.95(d) / d)``: the 95% ball of a ``d``-dimensional gradient has radius this times its SE.

    The standard error of a gradient is that of its length, spread evenly over the ``d`` tangent directions.
    """
    return float(np.sqrt(stats.chi2.ppf(0.95, d) / d))


def lepski_scales(gradients: NDArray, se: NDArray, *, kappa: float = KAPPA, alpha: float = ALPHA) -> NDArray:
    """Per gene, the index of the coarsest scale whose gradients agree with those of every finer scale.

    Scale ``k`` is accepted when scale ``k - 1`` was and, for every finer scale ``j < k``, the gradients at ``k``
    lie within ``kappa`` times the 95% ball of those at ``j`` (radius ``ball_factor(d) * se_j``) in all but a
    share ``alpha`` of the cells where ``se_j > 0``. Coarser scales average more cells (smaller variance) but
    bias the gradient where the signal curves; the rule stops before the bias exceeds the finer scales' noise. A
    cell whose standard error at ``j`` is zero (its neighbourhood holds one value of the gene, e.g. no count at
    all) has a ball of one point and no evidence about the bias: it does not vote.

    Parameters
    ----------
    gradients
        ``(cells, genes, d, scales)``, scales from the finest to the coarsest.
    se
        ``(cells, genes, scales)``: standard error of each gradient's length.
    kappa, alpha
        Tolerance of the ball and share of the voting cells allowed outside it.

    Returns
    -------
    ``(genes,)`` int: indices into the scales.
    """
    c = ball_factor(gradients.shape[2])
    n_genes, n_scales = gradients.shape[1], gradients.shape[3]
    choice = np.zeros(n_genes, dtype=np.int64)
    for k in range(1, n_scales):
        ok = choice == k - 1
        for j in range(k):
            dist = np.linalg.norm(gradients[..., k] - gradients[..., j], axis=2)
            voting = se[..., j] > 0
            outside = (dist > kappa * c * se[..., j]) & voting
            ok &= outside.sum(axis=0) <= alpha * voting.sum(axis=0)
        choice[ok] = k
    return choice


def widened_se(gradient: NDArray, finest: NDArray, finest_se: NDArray) -> NDArray:
    """The standard error of ``gradient`` at a coarser scale, widened to hold the finest scale's ball.

    ``finest_se + |g - g_0| / c`` (``c = ball_factor(d)``): the ball of radius ``c * se`` around ``g`` contains
    the finest scale's 95% ball (radius ``c * finest_se`` around ``g_0``), by the triangle inequality. It covers
    the true gradient wherever that ball does, whatever smoothing bias the coarser scale carries; it is at least
    as wide as the finest scale's. ``gradient`` and ``finest`` are ``(..., d)``, ``finest_se`` the matching
    ``(...)``.
    """
    c = ball_factor(gradient.shape[-1])
    return (finest_se + np.linalg.norm(gradient - finest, axis=-1) / c).astype(np.float32)
