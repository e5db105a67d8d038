"""Where a served model comes from: a checkpoint directory, a registered MLflow model or the
``checkpoint`` artifact of an MLflow run."""

from __future__ import annotations

from pathlib import Path

from incdyn.platform.checkpoint import ModelNotFoundError, read_meta


def resolve_checkpoint(model: str, tracking_uri: str | None = None) -> Path:
    """A checkpoint directory, a registered model (``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS``), or the ``checkpoint`` artifact of an MLflow run id (downloaded)."""
    if model.startswith("models:/"):
        from incdyn.platform.registry.resolve import checkpoint_of_model
        from incdyn.platform.tracking import resolve_tracking_uri

        return checkpoint_of_model(model, resolve_tracking_uri(tracking_uri))
    path = Path(model).expanduser()
    if path.is_dir():
        read_meta(path)  # names the directory if it is not a checkpoint
        return path.resolve()
    if path.exists() or "/" in model or model.startswith("."):
        raise ModelNotFoundError(
            f"{model} is not a checkpoint directory",
            "give a checkpoint directory, a method's MLflow run id or models:/NAME/VERSION",
        )
    import mlflow

    from incdyn.platform.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=model, artifact_path="checkpoint", tracking_uri=uri
        )
    except Exception as exc:
        raise ModelNotFoundError(
            f"{model!r} is neither a checkpoint directory nor an MLflow run with a 'checkpoint' "
            f"artifact in {uri} (a method's child run holds it, not the experiment's parent run): "
            f"{exc}"
        ) from None
    return Path(local)
