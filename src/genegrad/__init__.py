"""genegrad: the gradient of every gene on the cell-state manifold, at several scales."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, get, io, pl, pp, tl
from ._core._model import GradientModel
from ._validation import GenegradWarning

try:
    __version__ = version("genegrad")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["GenegradWarning", "GradientModel", "datasets", "get", "io", "pl", "pp", "tl"]
