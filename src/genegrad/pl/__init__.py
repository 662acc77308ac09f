"""Plots reading what the tools wrote; each returns its Axes or Figure."""

from ._gradients import gradient_stream
from ._patterns import patterns

__all__ = ["gradient_stream", "patterns"]
