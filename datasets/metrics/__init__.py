"""Scores: squared error, PDE residuals and their per-source dispatch."""
