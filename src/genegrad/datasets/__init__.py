"""Datasets: synthetic manifolds with exact ground truth, and loaders for real data."""

from ._synthetic import synthetic
from ._truth import true_gradients

__all__ = ["synthetic", "true_gradients"]
