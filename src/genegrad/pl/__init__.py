"""Plots reading what the tools wrote; each returns its Axes or Figure."""

from ._fate import drivers, fate_probs
from ._gradients import gradient_stream
from ._patterns import patterns

__all__ = ["drivers", "fate_probs", "gradient_stream", "patterns"]
