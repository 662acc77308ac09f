"""Preprocessing: counts to a representation, and the manifold with its gradient operator."""

from ._manifold import manifold
from ._preprocess import preprocess

__all__ = ["manifold", "preprocess"]
