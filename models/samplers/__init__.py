"""Samplers: single-step ensemble, multi-step (Alg. 4) and direct inference."""
