"""Large outputs: the full gradient tensor in a chunked zarr store, read lazily."""

from ._zarr import GradientStore

__all__ = ["GradientStore"]
