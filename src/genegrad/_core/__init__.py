"""Private numerics on plain arrays: graph, frames, gradient operator, scales. No AnnData here."""
