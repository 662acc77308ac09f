"""Accessors: read what the tools wrote, in the shape a user needs."""

from ._gradients import gradients

__all__ = ["gradients"]
