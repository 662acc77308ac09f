"""Preprocessing: counts to a representation, and the manifold with its gradient operator."""

from ._atac import preprocess_atac
from ._gene_activity import gene_activity
from ._manifold import manifold
from ._preprocess import preprocess
from ._transfer import transfer_manifold

__all__ = ["gene_activity", "manifold", "preprocess", "preprocess_atac", "transfer_manifold"]
