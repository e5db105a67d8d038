"""Ray Serve deployment of batched single-step ensemble imputation (paper Sec. 3.3).

Each replica (a Ray actor) loads one trained checkpoint. Serve's ``@serve.batch`` gathers
concurrent requests from all clients; every request draws its own K context masks and noise
from its own seeded generator, and the K rows of every request in the batch go through the
network together. A request with a ``seed`` gets the same answer batched or alone. Outside the
batched call a request is only decoded, checked, normalised (numpy) and encoded: its tensors are
made, moved to the device and brought back inside the batch, and the sampler plan and the
interval factors are built once per replica, not per request.

    POST /impute   JSON {"field": [...]} (null = missing) or {"values": [...], "mask": [...]},
                   options "k", "sampler", "seed", "level"; or a .npy/.npz body, options in the
                   query string (/impute?k=8&seed=1); the answer (mean, spread, the interval
                   bounds at "level", default 0.9) comes back as JSON or .npz alike
    POST /suggest  JSON window as for /impute plus "budget" (and "frame", "unit", "rule",
                   "noise", "tile", "sites", "radius", "k", "seed"): where to observe next,
                   the units ranked by the variance their observation is expected to remove
    GET  /healthz  (or /health) readiness, sample shape (T, C, H, W), channels, limits, spec,
                   whether the model carries a calibration (``calibration.json``)

Start it with ``incdyn serve MODEL`` (platform/serve/cli.py) or ``serve.run(build_app(...))``.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `Request` class in the
# route signatures that Serve's ingress rewrites (with string annotations it took `request` for
# a query parameter).
import asyncio
import dataclasses
import functools
import json
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from incdyn.models.samplers.registry import SAMPLERS
from incdyn.models.samplers.request import SeededRequest, impute_requests
from incdyn.platform.checkpoint import checkpoint_spec, load_denoiser
from incdyn.platform.evaluation.calibration import interval, load_calibration, served_inflation
from incdyn.platform.registry.model_source import resolve_checkpoint
from incdyn.platform.sampling import sampler_plan
from incdyn.platform.serve.body import read_body
from incdyn.platform.serve.codec import (
    RequestError,
    SampleShape,
    decode_binary,
    decode_json,
    encode_json,
    encode_npz,
    is_binary,
    parse_options,
    parse_suggest,
    to_sample,
)
from incdyn.platform.serve.config import ServeConfig, deployment_options
from incdyn.platform.suggest.options import SuggestOptions
from incdyn.platform.suggest.window import suggest_window

logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Job:
    """One request waiting for the batch, in model units but still numpy (no torch outside it).

    Attributes:
        sampler: the sampler's name.
        x: normalised field ``(C, T, H, W)`` float32, 0 at unobserved points, contiguous.
        mask: observation mask, bool ``(T, H, W)``.
        k: ensemble size K.
        seed: seed of the request's own generator.
    """

    sampler: str
    x: np.ndarray
    mask: np.ndarray
    k: int
    seed: int


api = FastAPI(title="incdyn imputer", docs_url=None, redoc_url=None)


@serve.deployment
@serve.ingress(api)
class Imputer:
    """A replica: the denoiser, its partition strategy and normalisation, behind HTTP routes."""

    def __init__(self, model: str, config: ServeConfig, tracking_uri: str | None = None) -> None:
        torch.set_num_threads(config.threads)
        self.config = config
        checkpoint = resolve_checkpoint(model, tracking_uri)
        self.denoiser, self.meta = load_denoiser(checkpoint, config.device)
        self.calibration = load_calibration(checkpoint)  # None: Gaussian intervals, uncalibrated
        self.spec, self.method = checkpoint_spec(self.meta)
        self.plan = dataclasses.replace(
            sampler_plan(self.spec, self.method), max_batch=config.max_network_batch
        )
        grid = config.grid or self.meta.get("grid")
        self.shape = SampleShape(
            frames=int(self.meta["frames"]),
            channels=tuple(self.meta["channels"]),
            grid=tuple(int(n) for n in grid) if grid else None,
        )
        norm = self.meta["normalization"]
        self.mean = np.asarray(norm["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(norm["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        self.default_k = min(self.method.ensemble, config.max_k)
        # q per channel of the served interval, by (level, k): built once, not per request
        self._inflation = functools.lru_cache(maxsize=4096)(
            functools.partial(served_inflation, self.calibration, channels=len(self.shape.channels))
        )
        if self.calibration is None:  # the Gaussian factors of the default level, at start-up
            for k in range(1, config.max_k + 1):
                self._inflation(0.9, k)
        self.stats = {"requests": 0, "batches": 0, "largest_batch": 0}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="impute")
        self._batched.set_max_batch_size(config.max_batch_size)
        self._batched.set_batch_wait_timeout_s(config.batch_wait_s)

    # -- routes -----------------------------------------------------------------------------

    @api.get("/healthz")
    @api.get("/health")
    async def health(self) -> JSONResponse:
        t, c = self.shape.frames, len(self.shape.channels)
        h, w = self.shape.grid or (None, None)
        return JSONResponse(
            {
                "status": "ready",
                "shape": [t, c, h, w],
                "dims": ["time", "channel", "y", "x"],
                "channels": list(self.shape.channels),
                "samplers": list(SAMPLERS),
                "default_k": self.default_k,
                "limits": {
                    "max_k": self.config.max_k,
                    "max_body_bytes": self.config.max_body_bytes,
                    "max_batch_size": self.config.max_batch_size,
                    "batch_wait_s": self.config.batch_wait_s,
                },
                "config": asdict(self.config),
                "step": self.meta.get("step"),
                "method": self.meta["method"],
                "normalization": self.meta["normalization"],
                "spec": self.meta["spec"],
                "stats": dict(self.stats),
                "calibrated": self.calibration is not None,
                "calibration": None
                if self.calibration is None
                else json.loads(self.calibration.to_json()),
            }
        )

    @api.post("/impute")
    async def http_impute(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.config.max_body_bytes)
            binary = is_binary(body)
            if binary:
                arrays, options = decode_binary(body, self.config.max_body_bytes), {}
            else:
                arrays, options = decode_json(body)
            result = await self._impute(arrays, {**request.query_params, **options})
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except Exception as exc:
            logger.exception("imputation failed")
            return JSONResponse({"error": f"internal error: {exc!r}"}, status_code=500)
        if binary:
            return Response(encode_npz(result), media_type="application/octet-stream")
        return Response(encode_json(result), media_type="application/json")

    @api.post("/suggest")
    async def http_suggest(self, request: Request) -> Response:
        """Where to observe next in the posted window: JSON ``{"field" | "values" + "mask",
        "budget", "frame", "unit", "rule", "noise", "tile", "sites", "radius", "k", "seed"}``
        → the ranked units with their expected variance reduction."""
        try:
            body = await read_body(request, self.config.max_body_bytes)
            if is_binary(body):
                raise RequestError("/suggest takes a JSON body (field or values and mask)")
            arrays, options = decode_json(body)
            values, mask = to_sample(arrays, self.shape)
            opts = parse_suggest(options, self.config.max_k)
            job = self._prepare("single", values, mask, opts.k or self.default_k, opts.seed)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._pool, self._suggest, job, opts)
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except Exception as exc:
            logger.exception("suggestion failed")
            return JSONResponse({"error": f"internal error: {exc!r}"}, status_code=500)
        return JSONResponse(result)

    def _suggest(self, job: Job, opts: SuggestOptions) -> dict[str, Any]:
        item = self._seeded(job)
        try:
            request = opts.request(int(item.mask.shape[0]))
            out = suggest_window(
                self.denoiser,
                self.plan,
                item.x,
                item.mask,
                request,
                k=job.k,
                generator=torch.Generator(device=item.x.device).manual_seed(job.seed),
            )
        except ValueError as exc:  # a budget beyond the candidates, a frame out of range
            raise RequestError(str(exc)) from None
        return {
            "picks": out.picks,
            "total_variance": out.total,
            "unit": request.unit,
            "rule": request.rule,
            "frame": request.frame,
            "k": job.k,
            "seed": job.seed,
        }

    # -- in-cluster callers (DeploymentHandle) ----------------------------------------------

    async def impute(
        self,
        field_or_values: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        k: int | None = None,
        sampler: str = "single",
        seed: int | None = None,
        level: float | None = None,
    ) -> dict[str, Any]:
        """``handle.impute.remote(field)`` → ``{"imputed", "spread", "lower", "upper", "level",
        "calibrated", "k", "seed", "sampler"}``."""
        arrays = (
            {"field": field_or_values}
            if mask is None
            else {"values": field_or_values, "mask": mask}
        )
        options = {"k": k, "sampler": sampler, "seed": seed, "level": level}
        return await self._impute(arrays, options)

    # -- the work ---------------------------------------------------------------------------

    async def _impute(self, arrays: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
        opts = parse_options(
            raw, samplers=tuple(SAMPLERS), default_k=self.default_k, max_k=self.config.max_k
        )
        values, mask = to_sample(arrays, self.shape)
        seed = opts.seed if opts.seed is not None else secrets.randbits(63)
        ok, out = await self._batched(self._prepare(opts.sampler, values, mask, opts.k, seed))
        if not ok:
            raise out
        imputed, spread = self._to_physical(values, mask, *out)
        # -- interval bounds at the requested level (platform/evaluation/calibration.py) ------
        q = self._inflation(opts.level, opts.k)
        lower, upper = interval(imputed, spread, q, channel_axis=1)
        return {
            "imputed": imputed,
            "spread": spread,
            "lower": lower,
            "upper": upper,
            "level": opts.level,
            "calibrated": self.calibration is not None,
            "k": opts.k,
            "seed": seed,
            "sampler": opts.sampler,
        }

    def _prepare(
        self, sampler: str, values: np.ndarray, mask: np.ndarray, k: int, seed: int
    ) -> Job:
        """The request normalised (numpy; the overflow check is the request's own 422)."""
        x = (values.astype(np.float32) - self.mean) / self.std  # (T, C, H, W)
        observed = mask[:, None]
        if not np.isfinite(x[np.broadcast_to(observed, x.shape)]).all():
            raise RequestError("observed values overflow float32 after normalisation")
        x = np.where(observed, x, np.float32(0.0)).transpose(1, 0, 2, 3)
        return Job(sampler, np.ascontiguousarray(x), mask, k, seed)

    def _to_physical(
        self, values: np.ndarray, mask: np.ndarray, imputed: np.ndarray, spread: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Model units ``(C, T, H, W)`` → physical ``(T, C, H, W)``; observed points are the
        request's own values, bit for bit (dtype float32 or wider, as sent)."""
        dtype = np.promote_types(values.dtype, np.float32)
        phys = imputed.transpose(1, 0, 2, 3) * self.std + self.mean
        observed = np.broadcast_to(mask[:, None], values.shape)
        out = np.where(observed, values.astype(dtype), phys.astype(dtype))
        spread_phys = np.where(observed, np.float32(0.0), spread.transpose(1, 0, 2, 3) * self.std)
        return out, spread_phys.astype(np.float32)

    def _seeded(self, job: Job) -> SeededRequest:
        device = self.config.device
        return SeededRequest(
            x=torch.from_numpy(job.x).to(device),
            mask=torch.from_numpy(job.mask).to(device),
            k=job.k,
            seed=job.seed,
        )

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)  # reset from ServeConfig
    async def _batched(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run_jobs, jobs)

    def _run_jobs(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        """One sampler call per sampler named in the batch; a failure fails only its group. The
        tensors of the batch are made and moved here, and every answer comes back as numpy
        ``(imputed, spread)`` ``(C, T, H, W)``."""
        results: list[tuple[bool, Any]] = [(False, None)] * len(jobs)
        for name in dict.fromkeys(job.sampler for job in jobs):
            idx = [i for i, job in enumerate(jobs) if job.sampler == name]
            try:
                items = [self._seeded(jobs[i]) for i in idx]
                outs = impute_requests(name, self.denoiser, self.plan, items)
                for i, (imputed, spread) in zip(idx, outs, strict=True):
                    results[i] = (True, (imputed.cpu().numpy(), spread.cpu().numpy()))
            except Exception as exc:
                logger.exception("sampler %r failed on a batch of %d", name, len(idx))
                for i in idx:
                    results[i] = (False, exc)
        self.stats["requests"] += len(jobs)
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(jobs))
        return results


def build_app(
    model: str,
    *,
    config: ServeConfig | None = None,
    tracking_uri: str | None = None,
    replicas: int = 1,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    cpus_per_replica: float = 1.0,
    gpus_per_replica: float = 0.0,
):
    """The Serve application: fixed ``replicas``, or autoscaling between min and max replicas.

    A checkpoint directory is made absolute and the tracking URI resolved here, in the driver,
    since replicas run with another working directory.
    """
    from incdyn.platform.tracking import resolve_tracking_uri

    config = config or ServeConfig()
    if gpus_per_replica > 0 and config.device == "cpu":
        config = ServeConfig(**{**asdict(config), "device": "cuda"})
    path = Path(model).expanduser()
    model = str(path.resolve()) if path.is_dir() else model
    options = deployment_options(
        config, replicas, min_replicas, max_replicas, cpus_per_replica, gpus_per_replica
    )
    return Imputer.options(**options).bind(model, config, resolve_tracking_uri(tracking_uri))
