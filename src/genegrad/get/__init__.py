"""Accessors: read what the tools wrote, in the shape a user needs."""

from ._descriptors import descriptors
from ._fate_programs import fate_programs
from ._fates import fates
from ._gradients import gradients
from ._gradients_se import gradients_se
from ._similarity import gradient_similarity

__all__ = ["descriptors", "fate_programs", "fates", "gradient_similarity", "gradients", "gradients_se"]
