"""The code MLflow loads an incdyn pyfunc model from (models-from-code: nothing is pickled)."""

import mlflow.models

from incdyn.platform.registry.pyfunc import CheckpointImputer

mlflow.models.set_model(CheckpointImputer())
