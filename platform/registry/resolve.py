"""``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` → the checkpoint directory of that version.

A missing model, version or alias is a :class:`ModelNotFoundError` (a :class:`FileNotFoundError`)
that names it, the registry, and what the registry does hold.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from incdyn.platform.checkpoint import ModelNotFoundError
from incdyn.platform.registry.pyfunc import CHECKPOINT_ARTIFACT

MODELS_SCHEME = "models:/"


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME/VERSION`` → ``(NAME, VERSION, None)``; ``models:/NAME@ALIAS`` →
    ``(NAME, None, ALIAS)``; ``latest`` is a version too."""
    rest = uri[len(MODELS_SCHEME) :].strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if name and alias and "/" not in alias:
            return name, None, alias
    elif rest.count("/") == 1:
        name, version = rest.split("/")
        if name and (version.isdigit() or version == "latest"):
            return name, version, None
    raise ModelNotFoundError(
        f"{uri!r} is not a model URI", "use models:/NAME/VERSION or models:/NAME@ALIAS"
    )


def _versions(client: MlflowClient, name: str) -> list[str]:
    found = client.search_model_versions(f"name = '{name}'")
    return sorted((str(v.version) for v in found), key=int)


def _version_of(
    client: MlflowClient, name: str, version: str | None, alias: str | None, where: str
) -> str:
    """The concrete version ``version`` or ``alias`` names; errors name what the registry holds."""
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        names = sorted(m.name for m in client.search_registered_models())
        raise ModelNotFoundError(
            f"no registered model {name!r} in the model registry at {where} "
            f"(registered models: {', '.join(names) or 'none'})"
        ) from None
    if alias is not None:
        aliases = dict(registered.aliases or {})
        if alias not in aliases:
            raise ModelNotFoundError(
                f"registered model {name!r} at {where} has no alias {alias!r} "
                f"(aliases: {', '.join(sorted(aliases)) or 'none'})"
            )
        return str(aliases[alias])
    versions = _versions(client, name)
    if version == "latest" and versions:
        return versions[-1]
    if version not in versions:
        raise ModelNotFoundError(
            f"registered model {name!r} at {where} has no version {version} "
            f"(versions: {', '.join(versions) or 'none'})"
        )
    return version


def checkpoint_of_model(uri: str, tracking_uri: str) -> Path:
    """Download the version ``uri`` names and return its checkpoint directory."""
    name, version, alias = parse_model_uri(uri)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    version = _version_of(client, name, version, alias, tracking_uri)
    source = client.get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri)
    checkpoint = Path(local) / "artifacts" / CHECKPOINT_ARTIFACT
    if not (checkpoint / "meta.json").is_file():
        raise ModelNotFoundError(
            f"{uri} (version {version}) holds no incdyn checkpoint ({CHECKPOINT_ARTIFACT}/meta.json)"
        )
    return checkpoint
