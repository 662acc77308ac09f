"""Datasets: synthetic manifolds with exact ground truth, and loaders for real data (offline)."""

from ._real import paul15, treutlein_lung
from ._synthetic import synthetic, tree_terminal_states
from ._truth import true_gradients

__all__ = ["paul15", "synthetic", "tree_terminal_states", "treutlein_lung", "true_gradients"]
