"""GPU-path options, checked on CPU: bf16 autocast, ``torch.compile``, channels-last.

Training runs through Ray Train's local mode (``ScalingConfig(num_workers=0)``: the worker loop
in this process, no cluster), so a test can watch it. Inductor compiles the UNet's training and
validation graphs in over a minute on 2 CPU cores with a cold cache, so the default test
compiles with the ``aot_eager`` backend (Dynamo graph capture and AOT autograd, eager kernels)
and the ``slow`` one with the real default, inductor.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import ray.train
import torch
from conftest import tiny_spec
from ray.train.torch import TorchTrainer

from incdyn.datasets.build import build_store, store_config
from incdyn.datasets.masks import MaskFamily
from incdyn.models.backbones.registry import build_denoiser
from incdyn.platform.checkpoint import load_denoiser, save_checkpoint
from incdyn.platform.spec import SpecError, parse_spec
from incdyn.platform.train import worker as loop_module
from incdyn.platform.train.driver import COMPILE_CACHE_ENV, compile_cache_dir
from incdyn.platform.train.worker import train_loop_per_worker

# data sizes and p left to the schema's defaults: the loop trains on the store built below
GPU_PATH = dict(
    name="gpu-path",
    methods=[{"name": "ours"}],
    n_train=None,
    n_val=None,
    n_test=None,
    p=None,
    steps=4,
    log_every=2,
    checkpoint_every=4,
    val_samples=2,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    url = tmp_path_factory.mktemp("gpu-path") / "tiny.zarr"
    config = store_config(
        source="navier_stokes",
        preset="quickstart",
        params={"grid": 16, "frames": 4},
        sizes={"train": 8, "val": 4, "test": 4},
        chunk=4,
        family=MaskFamily(kind="pixel", p=0.3),
        seed=0,
    )
    build_store(str(url), config, progress=False, use_ray=False)
    return url


def train_locally(
    tmp: Path, store: Path, monkeypatch, *, compile_cache: Path | None = None, **training
) -> tuple[dict, torch.nn.Module]:
    """The Ray Train loop of ``incdyn run`` for one method, in this process (``compile_cache``:
    the loop config's, which the driver sets from :func:`compile_cache_dir`).

    Returns the last metrics and the denoiser loaded from the last checkpoint. Local mode keeps
    no copy of a reported checkpoint (the loop's temporary directory is gone after the report),
    so a copy is saved beside each one.
    """
    spec = parse_spec(tiny_spec(store=store, training=training, **GPU_PATH))
    config = {
        "spec": spec.to_dict(),
        "method": spec.methods[0].model_dump(mode="json"),
        "store": str(store),
        "tracking_uri": None,
        "run_id": None,
        "threads": 2,
        "compile_cache": str(compile_cache) if compile_cache else None,
    }

    def save_and_keep(directory, **kwargs):
        save_checkpoint(tmp / "last", **kwargs)
        return save_checkpoint(directory, **kwargs)

    monkeypatch.setattr(loop_module, "save_checkpoint", save_and_keep)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=0),
        run_config=ray.train.RunConfig(name="local", storage_path=str(tmp / "runs")),
    )
    result = trainer.fit()
    assert result.error is None
    model, meta = load_denoiser(tmp / "last")  # an uncompiled denoiser: same parameter names
    assert meta["step"] == spec.training.steps
    return result.metrics, model


def _check_finite(metrics: dict, model: torch.nn.Module) -> None:
    assert metrics["step"] == 4
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_loss"])
    assert all(p.dtype == torch.float32 and p.isfinite().all() for p in model.parameters())


def test_options_are_validated_and_reach_the_backbone():
    spec = parse_spec(tiny_spec(store="x.zarr", **GPU_PATH))
    assert spec.training.precision == "fp32" and spec.training.compile is False
    assert spec.backbone.channels_last is True
    with pytest.raises(SpecError, match=r"training\.precision"):
        parse_spec(tiny_spec(store="x.zarr", training={"precision": "fp16"}, **GPU_PATH))
    backbone = {**spec.backbone.model_dump(mode="json"), "channels_last": False}
    denoiser = build_denoiser(backbone, spec.schedule.model_dump(), channels=1, frames=4)
    assert denoiser.backbone.channels_last is False


def test_bf16_autocast_training_runs_with_a_finite_loss(tmp_path, store, monkeypatch):
    seen = []  # (training?, autocast on?, autocast dtype) per loss evaluation

    def spy(model, x, *args):
        on = torch.is_autocast_enabled(x.device.type)
        seen.append((model.training, on, torch.get_autocast_dtype(x.device.type)))
        return real(model, x, *args)

    real = loop_module.data_matching_loss
    monkeypatch.setattr(loop_module, "data_matching_loss", spy)
    _check_finite(*train_locally(tmp_path, store, monkeypatch, precision="bf16"))
    training = [s[1:] for s in seen if s[0]]
    assert len(training) == 4 and set(training) == {(True, torch.bfloat16)}  # every step
    assert not any(on for train, on, _ in seen if not train)  # validation stays fp32


def test_compiled_backbone_trains_and_its_checkpoint_loads_uncompiled(tmp_path, store, monkeypatch):
    compiled = []
    real = torch.nn.Module.compile

    def compile_cheaply(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        return real(self, *args, **{**kwargs, "backend": "aot_eager"})

    monkeypatch.setattr(torch.nn.Module, "compile", compile_cheaply)
    _check_finite(*train_locally(tmp_path, store, monkeypatch, compile=True))
    assert compiled == ["UNet"]


def test_compiled_trainings_share_one_cache_under_the_storage_path(tmp_path, monkeypatch):
    monkeypatch.delenv(COMPILE_CACHE_ENV, raising=False)
    spec = parse_spec(
        tiny_spec(store="x.zarr", ray={"storage_path": str(tmp_path / "runs")}, **GPU_PATH)
    )
    assert compile_cache_dir(spec) == str(tmp_path / "runs" / "torch_compile_cache")
    remote = parse_spec(tiny_spec(store="x.zarr", ray={"storage_path": "gs://b/runs"}, **GPU_PATH))
    assert compile_cache_dir(remote) is None  # Inductor writes local files: torch's default
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "mine"))  # the user's choice wins
    assert compile_cache_dir(spec) == compile_cache_dir(remote) == str(tmp_path / "mine")


def test_the_loop_compiles_into_the_given_cache_and_times_the_first_step(
    tmp_path, store, monkeypatch
):
    real = torch.nn.Module.compile
    monkeypatch.setattr(  # aot_eager: graph capture without Inductor's minutes of codegen
        torch.nn.Module, "compile", lambda self, **kw: real(self, **{**kw, "backend": "aot_eager"})
    )
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "before"))  # restored after the test
    metrics, model = train_locally(
        tmp_path, store, monkeypatch, compile_cache=tmp_path / "cache", compile=True
    )
    _check_finite(metrics, model)
    assert os.environ[COMPILE_CACHE_ENV] == str(tmp_path / "cache")
    assert metrics["time_compile_s"] > 0.0  # the first step, apart from the others
    assert metrics["time_steps_s"] > 0.0


@pytest.mark.slow
def test_inductor_compile_with_bf16(tmp_path, store, monkeypatch):
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "before"))  # restored after the test
    cache = tmp_path / "cache"
    _check_finite(
        *train_locally(
            tmp_path, store, monkeypatch, compile_cache=cache, compile=True, precision="bf16"
        )
    )
    assert any(p.is_file() for p in cache.rglob("*"))  # Inductor wrote its compilation there
