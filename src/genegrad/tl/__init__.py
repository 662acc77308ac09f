"""Tools: gene gradients on the manifold, the geometry of each gene's gradient field, and fate bias."""

from ._cellrank import to_cellrank
from ._drivers import drivers
from ._fate import fate_bias
from ._fate_features import evaluate_fate_features, fate_features
from ._gradients import gradients
from ._patterns import patterns
from ._pseudotime import pseudotime
from ._terminal_states import terminal_states

__all__ = ["drivers", "evaluate_fate_features", "fate_bias", "fate_features", "gradients", "patterns", "pseudotime",
           "terminal_states", "to_cellrank"]
