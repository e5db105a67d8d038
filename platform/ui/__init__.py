"""The MLflow UI for incdyn experiments: the comparison view and ``incdyn ui``."""
