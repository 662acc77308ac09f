"""Plots reading what the tools wrote."""

__all__: list[str] = []
