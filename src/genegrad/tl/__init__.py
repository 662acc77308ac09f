"""Tools: gene gradients on the manifold."""

from ._gradients import gradients

__all__ = ["gradients"]
