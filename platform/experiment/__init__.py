"""Experiment commands: run, data and audit."""
