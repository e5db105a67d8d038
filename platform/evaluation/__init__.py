"""Evaluation: scores on val and test, held-out passes, ensemble verification, calibration and
the exposure audit."""
