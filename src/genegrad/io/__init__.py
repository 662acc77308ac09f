"""Outputs: the full gradient tensor in a chunked zarr store, read lazily; a report folder of the results."""

from ._report import write_report
from ._zarr import GradientStore

__all__ = ["GradientStore", "write_report"]
