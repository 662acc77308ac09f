"""Tools: gene gradients on the manifold, and the geometry of each gene's gradient field."""

from ._gradients import gradients
from ._patterns import patterns

__all__ = ["gradients", "patterns"]
