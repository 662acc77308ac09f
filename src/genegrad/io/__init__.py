"""Outputs: a report folder of the results; the gradient store (:class:`GradientStore`, read lazily)."""

from .._store import GradientStore
from ._report import write_report

__all__ = ["GradientStore", "write_report"]
