"""An incdyn checkpoint as an MLflow pyfunc model: ``model.pt`` weights + ``meta.json`` spec.

Nothing is pickled: MLflow loads the model from code (``model_code.py``), and
:meth:`CheckpointImputer.load_context` rebuilds the denoiser from the checkpoint's resolved spec.
``predict`` runs the single-step ensemble (Sec. 3.3) with the K context masks of a sample in one
network batch, as ``incdyn serve`` does.

    model = mlflow.pyfunc.load_model("models:/quickstart-ours/1")
    out = model.predict(field, params={"k": 10, "seed": 0})   # field (T, C, H, W), NaN = missing
    out["imputed"], out["spread"]                              # (T, C, H, W) each
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import torch

CHECKPOINT_ARTIFACT = "checkpoint"  # key of the checkpoint directory in the model's artifacts


class CheckpointImputer(mlflow.pyfunc.PythonModel):
    """Imputes ``(T, C, H, W)`` fields (NaN at missing points) with a trained denoiser."""

    def load_context(self, context: Any) -> None:
        from incdyn.platform.checkpoint import checkpoint_spec, load_denoiser
        from incdyn.platform.sampling import sampler_plan

        self.denoiser, self.meta = load_denoiser(context.artifacts[CHECKPOINT_ARTIFACT])
        spec, method = checkpoint_spec(self.meta)
        self.plan = sampler_plan(spec, method)
        norm = self.meta["normalization"]
        self.mean = np.asarray(norm["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(norm["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        self.default_k = method.ensemble

    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """``model_input``: one field ``(T, C, H, W)``, NaN at the missing points. ``params``:
        ``k`` (ensemble size), ``seed``. Returns ``imputed`` (the observed points unchanged) and
        ``spread`` (the ensemble's std per point), both ``(T, C, H, W)``."""
        from incdyn.models.samplers.request import SeededRequest, single_step

        params = params or {}
        field = np.asarray(model_input, dtype=np.float32)
        if field.ndim != 4:
            raise ValueError(f"expected one field (T, C, H, W), got shape {field.shape}")
        mask = np.isfinite(field).all(axis=1)  # (T, H, W): a point is observed in every channel
        if not mask.any():
            raise ValueError("the field has no observed point (all NaN)")
        x = np.where(mask[:, None], (field - self.mean) / self.std, np.float32(0.0))
        item = SeededRequest(
            x=torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2, 3))),
            mask=torch.from_numpy(mask),
            k=int(params.get("k") or self.default_k),
            seed=int(params.get("seed") or 0),
        )
        ((imputed, spread),) = single_step(self.denoiser, self.plan, [item])
        phys = imputed.numpy().transpose(1, 0, 2, 3) * self.std + self.mean
        observed = np.broadcast_to(mask[:, None], field.shape)
        return {
            "imputed": np.where(observed, field, phys).astype(np.float32),
            "spread": np.where(observed, 0.0, spread.numpy().transpose(1, 0, 2, 3) * self.std),
        }
