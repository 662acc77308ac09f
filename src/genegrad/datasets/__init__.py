"""Datasets: synthetic and semi-synthetic data with exact ground truth, and loaders for real data (offline)."""

from ._larry import larry
from ._like import simulate_like
from ._real import granja_atac, myoblast_atac, paul15, pbmc_multiome, treutlein_lung
from ._synthetic import synthetic, tree_terminal_states
from ._truth import true_gradients

__all__ = ["granja_atac", "larry", "myoblast_atac", "paul15", "pbmc_multiome", "simulate_like", "synthetic",
           "tree_terminal_states", "treutlein_lung", "true_gradients"]
