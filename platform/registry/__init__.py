"""Trained models in the MLflow model registry: logged as pyfunc models, resolved for serving."""
