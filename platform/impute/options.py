"""The options of one ``incdyn impute`` (what the command line gives)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImputeOptions:
    """Attributes:
    model: checkpoint dir, MLflow run id or ``models:/...`` (None with a classical ``method``).
    input, out: the record and the output (zarr, or netCDF by extension).
    method: ``model`` or ``dineof``, ``telea``, ``inpaint_ns``, ``temporal``.
    variables, dims, time: override the model's ``data.params`` (None: the model's).
    k, seed, level: ensemble size (None: the model's), base seed, interval level.
    window: frames per window of a classical method (a model uses its own).
    stride: frames between window starts (None: half a window).
    block: frames per output block and time chunk.
    actors, cpus_per_actor, gpus_per_actor: the Ray Data pool (0 actors: in this process).
    holdout, holdout_seed: share of observed points withheld to score the product.
    overwrite, dry_run, mlflow, tracking_uri, progress: what else the command does.
    """

    model: str | None
    input: str
    out: str
    method: str = "model"
    variables: tuple[str, ...] | None = None
    dims: tuple[str, str, str] | None = None
    time: tuple[str, str] | None = None
    k: int | None = None
    seed: int = 0
    level: float = 0.9
    window: int = 8
    stride: int | None = None
    block: int = 32
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    holdout: float = 0.0
    holdout_seed: int = 0
    overwrite: bool = False
    dry_run: bool = False
    mlflow: bool = False
    tracking_uri: str | None = None
    progress: bool = True
