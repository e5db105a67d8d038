"""An incdyn checkpoint as an MLflow pyfunc model: ``model.pt`` weights + ``meta.json`` spec.

Nothing is pickled: MLflow loads the model from code (``model_code.py``), and
:meth:`CheckpointImputer.load_context` rebuilds the denoiser from the checkpoint's resolved spec.
``predict`` runs the single-step ensemble (Sec. 3.3) with the K context masks of a sample in one
network batch, as ``incdyn serve`` does.

    model = mlflow.pyfunc.load_model("models:/quickstart-ours/1")
    out = model.predict(field, params={"k": 10, "seed": 0, "level": 0.9})  # (T, C, H, W), NaN = missing
    out["imputed"], out["spread"], out["lower"], out["upper"]                # (T, C, H, W) each

The interval bounds at ``level`` use the model's split-conformal calibration when its checkpoint
carries one (``calibration.json``, fitted on held-out observed validation points), else the
Gaussian prediction interval of the K members — as ``incdyn serve`` answers them.
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
        from incdyn.platform.evaluation.calibration import load_calibration
        from incdyn.platform.sampling import sampler_plan

        directory = context.artifacts[CHECKPOINT_ARTIFACT]
        self.denoiser, self.meta = load_denoiser(directory)
        self.calibration = load_calibration(directory)  # None: uncalibrated (Gaussian) intervals
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
        ``k`` (ensemble size), ``seed``, ``level`` (of the interval, in [0.01, 0.99]). Returns
        ``imputed`` (the observed points unchanged), ``spread`` (the ensemble's std per point)
        and the interval bounds ``lower``/``upper``, each ``(T, C, H, W)``."""
        from incdyn.models.samplers.request import SeededRequest, single_step
        from incdyn.platform.evaluation.calibration import interval, served_inflation

        params = params or {}
        level = float(params.get("level") or 0.9)
        if not 0.01 <= level <= 0.99:
            raise ValueError(f"level must be a number in [0.01, 0.99], got {params.get('level')!r}")
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
        imputed = np.where(observed, field, phys).astype(np.float32)
        spread = np.where(observed, 0.0, spread.numpy().transpose(1, 0, 2, 3) * self.std)
        q = served_inflation(self.calibration, level, item.k, field.shape[1])
        lower, upper = interval(imputed, spread.astype(np.float32), q, channel_axis=1)
        return {"imputed": imputed, "spread": spread, "lower": lower, "upper": upper}
