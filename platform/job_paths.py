"""Where relative paths resolve, and the refusal of paths a Ray job would lose.

Outside a job, a relative ``data.store``, ``ray.storage_path`` or ``sqlite:///./mlflow.db``
resolves against the current directory. A ``ray job submit`` entrypoint runs in Ray's temporary
copy of the working directory, deleted with the job's files: what a spec writes there is lost
without a word. So in a job (Ray sets ``RAY_JOB_CONFIG_JSON_ENV_VAR`` for the entrypoint) these
relative paths are refused before anything starts, unless ``$INCDYN_HOME`` names an absolute
folder to resolve them against instead (its own ``data/``, ``runs/`` and ``mlflow.db``).
"""

from __future__ import annotations

import os
from pathlib import Path

from incdyn.platform.spec import ExperimentSpec, SpecError, variants_of

HOME_ENV = "INCDYN_HOME"
JOB_ENV = ("RAY_JOB_CONFIG_JSON_ENV_VAR", "RAY_JOB_ID")  # entrypoint, workers
DEFAULT_TRACKING = "sqlite:///./mlflow.db"


def home() -> Path:
    """The folder relative paths resolve against: ``$INCDYN_HOME``, else the current one."""
    configured = os.environ.get(HOME_ENV)
    if not configured:
        return Path.cwd()
    if not os.path.isabs(configured):
        raise SpecError(f"${HOME_ENV}", f"must be an absolute path, got {configured!r}")
    return Path(configured)


def resolve_local(path: str) -> str:
    """``path`` made absolute against :func:`home`; URIs (``gs://``, ``memory://``) unchanged."""
    if "://" in path:
        return path
    return str((home() / Path(path).expanduser()).resolve())


def in_ray_job() -> bool:
    return any(os.environ.get(name) for name in JOB_ENV)


def _relative_tracking(configured: str | None) -> str | None:
    """The MLflow store as written when it is a relative local path, else None."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"{DEFAULT_TRACKING} (the default: no mlflow.tracking_uri, no $MLFLOW_TRACKING_URI)"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return uri
    if "://" not in uri and not uri.startswith("sqlite:") and not os.path.isabs(uri):
        return uri
    return None


def check_job_paths(spec: ExperimentSpec) -> None:
    """Refuse, inside a Ray job without ``$INCDYN_HOME``, every relative path ``spec`` writes to.

    Raises :class:`SpecError` naming each field and what to use instead.
    """
    if not in_ray_job():
        return
    if os.environ.get(HOME_ENV):
        home()  # still refuses a relative $INCDYN_HOME
        return
    problems = []
    for variant in variants_of(spec):
        url = variant.store_url
        if "://" not in url and not os.path.isabs(url):
            where = f" (setting {variant.setting!r})" if variant.setting else ""
            problems.append(f"data.store {url!r}{where}")
    if "://" not in spec.ray.storage_path and not os.path.isabs(spec.ray.storage_path):
        problems.append(f"ray.storage_path {spec.ray.storage_path!r}")
    tracking = _relative_tracking(spec.mlflow.tracking_uri)
    if tracking:
        problems.append(f"mlflow.tracking_uri {tracking}")
    if not problems:
        return
    fields = ", ".join(dict.fromkeys(p.split(" ")[0] for p in problems))
    listed = "; ".join(dict.fromkeys(problems))
    raise SpecError(
        fields,
        "inside a Ray job, relative paths resolve in the job's temporary copy of the working "
        f"directory and are deleted with it; refusing: {listed}",
        "use an absolute path on storage every node shares (e.g. --set data.store=/shared/"
        "data/x.zarr --set ray.storage_path=/shared/runs), a gs:// URI, and an MLflow server "
        "(MLFLOW_TRACKING_URI=http://HOST:5000 in the job's env_vars); or set INCDYN_HOME to an "
        "absolute folder in the job's env_vars to resolve relative paths against it",
    )
