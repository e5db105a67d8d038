"""Shared fixtures and builders: small experiment specs, a real local Ray instance, an MLflow
client on a stopped clock.

Test modules import the builders as ``from conftest import tiny_spec``: pytest puts ``tests/``
(which has no ``__init__.py``) first on ``sys.path`` and registers this file as ``conftest``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

warnings.filterwarnings("ignore", module="zarr")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


def tiny_spec(
    *,
    tmp: Path | None = None,  # store, Ray Train storage and MLflow db go here (None: defaults)
    name: str = "tiny",
    store: Path | str | None = None,  # None: tmp / "tiny.zarr"
    methods: list[dict] | None = None,  # None: ours with a 2-mask ensemble
    n_train: int | None = 16,  # None: the schema's default, as for n_val, n_test and p
    n_val: int | None = 4,
    n_test: int | None = 4,
    p: float | None = 0.3,  # observed fraction of the pixel masks
    steps: int = 6,
    batch_size: int = 2,
    log_every: int = 3,
    checkpoint_every: int = 3,
    val_samples: int = 4,
    workers: int = 1,  # Ray Train workers (DDP when > 1)
    cpus_per_worker: float | None = None,
    max_failures: int | None = None,
    experiment: str | None = None,  # MLflow experiment (None: the spec's name)
    tracking_uri: str | None = "sqlite:///{tmp}/mlflow.db",
    **sections: Any,
) -> dict[str, Any]:
    """A raw experiment spec small enough for 2 CPU cores: Navier–Stokes on a 16×16 grid of 4
    frames, chunks of 4 samples, a width-8 UNet, a few steps of batch 2.

    Returns a plain dict, for ``parse_spec`` or a YAML file. A field left ``None`` stays out of
    the spec (the schema's default applies). ``tracking_uri`` has ``{tmp}`` filled in; it stays
    out when it is ``None`` (``$MLFLOW_TRACKING_URI`` applies) or needs a ``tmp`` not given.

    Any other keyword is a top-level section or field: a dict is merged into the section built
    here, its keys winning (``training={"precision": "bf16"}`` keeps the steps; a nested dict
    given, such as ``data={"observation": ...}``, replaces that nested dict whole); any other
    value (``seed=3``) is set as it is.
    """
    if store is None:
        if tmp is None:
            raise ValueError("tiny_spec needs tmp or store")
        store = tmp / "tiny.zarr"
    data: dict[str, Any] = {"params": {"grid": 16, "frames": 4}, "store": str(store), "chunk": 4}
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    data.update({key: value for key, value in sizes.items() if value is not None})
    if p is not None:
        data["observation"] = {"p": p}
    ray: dict[str, Any] = {"num_workers": workers}
    if cpus_per_worker is not None:
        ray["cpus_per_worker"] = cpus_per_worker
    if max_failures is not None:
        ray["max_failures"] = max_failures
    if tmp is not None:
        ray["storage_path"] = str(tmp / "runs")
    mlflow: dict[str, Any] = {}
    if experiment is not None:
        mlflow["experiment"] = experiment
    if tracking_uri is not None and (tmp is not None or "{tmp}" not in tracking_uri):
        mlflow["tracking_uri"] = tracking_uri.format(tmp=tmp)
    spec: dict[str, Any] = {
        "name": name,
        "data": data,
        "methods": methods if methods is not None else [{"name": "ours", "ensemble": 2}],
        "backbone": {"width": 8, "mults": [1, 2], "blocks_per_level": 1},
        "training": {
            "steps": steps,
            "batch_size": batch_size,
            "log_every": log_every,
            "checkpoint_every": checkpoint_every,
            "val_samples": val_samples,
        },
        "ray": ray,
        **({"mlflow": mlflow} if mlflow else {}),
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def clocked_client(tracking_uri: str):
    """An ``MlflowClient`` whose runs start and end at its ``now`` (ms since the epoch), not at
    the wall clock's time: which run is the latest, and how long a run took, are the test's to
    choose. Set ``client.now`` before ``start_parent``/``start_child``/``run_scope`` act."""
    from mlflow.tracking import MlflowClient

    class ClockedClient(MlflowClient):
        now = 0

        def create_run(self, experiment_id, start_time=None, tags=None, run_name=None):
            start = self.now if start_time is None else start_time
            return super().create_run(experiment_id, start, tags, run_name)

        def set_terminated(self, run_id, status=None, end_time=None):
            end = self.now if end_time is None else end_time
            return super().set_terminated(run_id, status, end)

    return ClockedClient(tracking_uri)


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance with 2 CPUs for the whole session."""
    import ray

    from incdyn.platform.ray_session import PINNED_RUNTIME_ENV

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            logging_level="ERROR",
            runtime_env=PINNED_RUNTIME_ENV,
        )
    yield ray
    ray.shutdown()


def tiny_job_spec(
    *, store: str, storage_path: str | None = None, steps: int = 4, methods: list | None = None
) -> dict:
    """:func:`tiny_spec` for a whole `incdyn run` on a local Ray or as a Ray job: paths as given
    (relative ones on purpose), one worker of 1 CPU (unset, one worker would ask for all 2 CPUs
    while a job's driver holds 0.1), no figures, the MLflow store from the environment."""
    spec = tiny_spec(
        name="jobsmoke",
        store=store,
        methods=methods,
        steps=steps,
        log_every=2,
        checkpoint_every=2,
        cpus_per_worker=1,
        tracking_uri=None,
        evaluation={"figure": False},
    )
    if storage_path is not None:
        spec["ray"]["storage_path"] = storage_path
    return spec


QUICKSTART_METHODS = [  # the quick start's three methods: ours, MissDiff, NS inpainting
    {"name": "ours", "partition": {"context_ratio": 0.7, "query_ratio": 0.7}, "ensemble": 3},
    {
        "name": "missdiff",
        "partition": {"context_ratio": 1.0, "query_ratio": 1.0},
        "ensemble": 1,
        "allow_zero_exposure": True,
    },
    {"name": "ns_inpaint", "kind": "inpaint_ns"},
]


def comparison_spec(tmp, *, steps: int = 4) -> dict:
    """:func:`tiny_spec` of the quick start's three methods, everything in ``tmp``."""
    return tiny_spec(
        tmp=tmp,
        name="tiny-compare",
        methods=QUICKSTART_METHODS,
        steps=steps,
        log_every=steps,
        checkpoint_every=steps,
        experiment="tiny-compare",
        data={"preset": "quickstart"},
    )


@pytest.fixture(scope="session")
def comparison_run(tmp_path_factory, ray_local):
    """``incdyn run`` of :func:`comparison_spec`, once per session: (spec file, spec, rows).

    The spec is also written as YAML, for commands that take a spec path (``incdyn ui``)."""
    import yaml
    from mlflow.tracking import MlflowClient

    from incdyn.platform.experiment.run import run_experiment
    from incdyn.platform.spec import parse_spec

    tmp = tmp_path_factory.mktemp("compare")
    raw = comparison_spec(tmp)
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = parse_spec(raw)
    # artifacts under tmp, not ./mlruns (a SQLite store's default artifact root is the cwd)
    client = MlflowClient(spec.mlflow.tracking_uri)
    client.create_experiment(spec.experiment_name, artifact_location=(tmp / "mlruns").as_uri())
    rows = run_experiment(spec, progress=False)
    return path, spec, rows


SEA_GRID = (40, 12, 16)  # frames, latitudes, longitudes of :func:`sea_surface_file`


def sea_surface_file(
    path,
    *,
    gaps: bool,
    time=None,
    all_nan: bool = False,
    fill: float = -999.0,
    land: float = float("nan"),
    lsm: bool = False,
) -> str:
    """A netCDF file ordered (lon, t, lat): a smooth low-rank 'sst' with land (lat < 3, lon < 4)
    missing at every time (or set to ``land``), and with ``gaps`` moving cloud gaps stored as
    _FillValue; ``lsm`` adds a land-sea mask variable ``lsm (lat, lon)``, 1 on land."""
    import numpy as np
    import xarray as xr

    frames, nlat, nlon = SEA_GRID
    rng = np.random.default_rng(0)
    t = np.arange(frames)
    lat, lon = np.linspace(-10, 10, nlat), np.linspace(100, 130, nlon)
    pattern = np.sin(lat[None, :] / 4 + lon[:, None] / 7)  # (lon, lat)
    sst = 20 + pattern[:, None, :] * np.cos(t / 5)[None, :, None]
    sst = sst + 0.3 * np.sin(t / 3)[None, :, None]
    if gaps:
        sst[rng.random(sst.shape) < 0.3] = np.nan
    sst[:4, :, :3] = land
    if all_nan:
        sst[:] = np.nan
    data = {"sst": (("lon", "t", "lat"), sst.astype(np.float32), {"units": "degC"})}
    if lsm:
        mask = np.zeros((nlat, nlon), np.float32)
        mask[:3, :4] = 1.0
        data["lsm"] = (("lat", "lon"), mask)
    ds = xr.Dataset(data, coords={"lon": lon, "t": t if time is None else time, "lat": lat})
    ds.to_netcdf(path, encoding={"sst": {"_FillValue": fill}})
    return str(path)


def perturbed_denoiser():
    """A tiny UNet denoiser (2 channels, 3 frames) with seeded random weights, perturbed so that
    its outputs depend on the input and context masks give different members."""
    import torch

    from incdyn.models.backbones.registry import build_denoiser

    torch.manual_seed(0)
    den = build_denoiser(
        {"name": "unet", "width": 8, "mults": [1, 2], "blocks_per_level": 1},
        {"beta_min": 0.1, "beta_max": 20.0, "t_min": 1e-3},
        channels=2,
        frames=3,
    )
    with torch.no_grad():
        for p in den.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return den.eval()


def free_field(shape: tuple[int, ...]):
    """A 'network' whose output is a learnable field, whatever the input: D(t, ·) = θ; it keeps
    the input it was last given in ``seen_input``."""
    import torch
    from torch import nn

    class FreeField(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.theta = nn.Parameter(torch.zeros(shape))
            self.seen_input = None

        def forward(self, x, noise_label):
            self.seen_input = x
            return self.theta.expand(x.shape[0], -1, -1, -1, -1)

    return FreeField()
