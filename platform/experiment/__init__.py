"""Experiment commands: run, data, audit and evaluation."""
