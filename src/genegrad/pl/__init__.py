"""Plots reading what the tools wrote; each returns its Axes."""

from ._gradients import gradient_stream

__all__ = ["gradient_stream"]
