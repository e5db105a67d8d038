"""``incdyn impute``'s driver: resolve the model and the input, check them, plan the windows,
tiles and blocks, create (or resume) the output, run the blocks on a Ray Data actor pool (or in
this process) and summarise.

Nothing is written before every check has passed. An existing output is resumed when it was
made with the same settings and is incomplete; it is replaced only with ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from incdyn.platform.impute import output
from incdyn.platform.impute.block import observations, write_estimate
from incdyn.platform.impute.imputer import BlockImputer, rows_of
from incdyn.platform.impute.job import ImputeJob
from incdyn.platform.impute.layout import Layout, layout_for
from incdyn.platform.impute.options import ImputeOptions
from incdyn.platform.impute.record import ImputeError, Record, open_record

CLASSICAL_METHODS = ("dineof", "telea", "inpaint_ns", "temporal")
LOCAL_ONLY = ("memory://",)  # per-process stores: Ray actors cannot see them


@dataclass
class Summary:
    """What a run did (``rows``: one per block filled by this run)."""

    output: str
    method: str
    frames: int = 0
    blocks: int = 0
    blocks_resumed: int = 0
    filled: int = 0
    observed: int = 0
    inside: int = 0
    empty_frames: int = 0
    wall_s: float = 0.0
    heldout_rmse: dict[str, float] = field(default_factory=dict)
    heldout_coverage: dict[str, float] = field(default_factory=dict)
    heldout_points: dict[str, int] = field(default_factory=dict)
    level: float = 0.9
    plan: dict = field(default_factory=dict)

    @property
    def observed_share(self) -> float:
        return self.observed / self.inside if self.inside else float("nan")

    def text(self) -> str:
        lines = [
            f"imputed {self.frames} frames ({self.blocks} blocks"
            + (f", {self.blocks_resumed} already done" if self.blocks_resumed else "")
            + f") with {self.method} in {self.wall_s:.1f} s",
            f"  points filled {self.filled}, observed share {self.observed_share:.1%}"
            f" of {self.inside} domain points",
        ]
        if self.empty_frames:
            lines.append(
                f"  {self.empty_frames} frames had no observed point (filled, flagged "
                "filled_frame_without_observations)"
            )
        for name, rmse in self.heldout_rmse.items():
            cover = self.heldout_coverage.get(name, float("nan"))
            lines.append(
                f"  held-out {name}: RMSE {rmse:.4g}, {self.level:.0%} interval coverage "
                f"{cover:.1%} ({self.heldout_points[name]} points)"
            )
        lines.append(f"  output: {self.output}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Prepared:
    job: ImputeJob
    record: Record
    options: ImputeOptions
    model_name: str
    k: int
    settings: dict


def _model_defaults(checkpoint: Path) -> tuple[dict, dict]:
    from incdyn.platform.checkpoint import read_meta

    meta = read_meta(checkpoint)
    return meta, dict(meta.get("spec", {}).get("data", {}).get("params", {}))


def _dims(value) -> tuple[str, str, str] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return tuple(str(value[r]) for r in ("time", "y", "x"))  # type: ignore[return-value]
    return tuple(str(v) for v in value)  # type: ignore[return-value]


def _check_options(opts: ImputeOptions) -> None:
    """The options that need no file: method and model, level, hold-out share."""
    if opts.method != "model" and opts.method not in CLASSICAL_METHODS:
        raise ImputeError(
            f"--method: {opts.method!r} is not one of {['model', *CLASSICAL_METHODS]}"
        )
    if opts.method == "model" and not opts.model:
        raise ImputeError("MODEL: name a checkpoint, run id or models:/NAME, or give --method")
    if opts.method != "model" and opts.model:
        raise ImputeError(f"--method {opts.method}: a classical method takes no MODEL; drop it")
    if not 0.0 < opts.level < 1.0:
        raise ImputeError(f"--level: {opts.level} must lie in (0, 1), e.g. 0.9")
    if not 0.0 <= opts.holdout < 0.5:
        raise ImputeError(f"--holdout: {opts.holdout} must lie in [0, 0.5), e.g. 0.1")


def prepare(opts: ImputeOptions) -> Prepared:
    """Every check before anything is written: model, input, variables, dims, time, grid."""
    _check_options(opts)
    checkpoint, params, meta = None, {}, {}
    if opts.method == "model":
        from incdyn.platform.registry.model_source import resolve_checkpoint

        try:
            checkpoint = resolve_checkpoint(str(opts.model), opts.tracking_uri)
        except FileNotFoundError as exc:
            raise ImputeError(f"MODEL: {exc}") from None
        meta, params = _model_defaults(checkpoint)
    variables = tuple(opts.variables or params.get("variables") or ())
    dims = opts.dims or _dims(params.get("dims")) or ("time", "y", "x")
    domain = params.get("domain", "missing")
    record = open_record(opts.input, variables, dims, time=opts.time, domain=domain)
    frames, h, w = record.shape
    if opts.method == "model":
        channels = list(meta["channels"])
        if len(variables) != len(channels):
            raise ImputeError(
                f"--variables: the model takes {len(channels)} channels {channels}; "
                f"{list(variables)} are {len(variables)}: name {len(channels)} variables"
            )
        window = int(meta["frames"])
        grid = tuple(int(n) for n in meta["grid"]) if meta.get("grid") else None
        k = int(opts.k or _ensemble(meta))
    else:
        window, grid, k = min(opts.window, frames), None, 1
    if frames < window:
        raise ImputeError(
            f"--time: the record has {frames} frames in the range asked for; the model's "
            f"windows have {window}: widen --time"
        )
    if grid is not None and (h < (grid[0] + 1) // 2 or w < (grid[1] + 1) // 2):
        raise ImputeError(
            f"--input: the grid {h} × {w} is smaller than the model can take (trained on "
            f"{grid[0]} × {grid[1]}; at least {(grid[0] + 1) // 2} × {(grid[1] + 1) // 2}): "
            "give a larger region"
        )
    block = max(opts.block, 1)
    layout = layout_for(
        frames, (h, w), window=window, model_grid=grid, block=block, stride=opts.stride
    )
    plan = output.output_plan(opts.out)
    job = ImputeJob(
        url=opts.input,
        variables=variables,
        dims=dims,
        time=opts.time,
        domain=domain,
        inside=np.ones((h, w), bool),
        method=opts.method,
        checkpoint=None if checkpoint is None else str(checkpoint),
        k=k,
        seed=opts.seed,
        level=opts.level,
        layout=layout,
        store=plan.store,
        time_dim=dims[0],
        holdout=opts.holdout,
        holdout_seed=opts.holdout_seed,
        threads=max(1, int(opts.cpus_per_actor)),
        device="cuda" if opts.gpus_per_actor > 0 else "cpu",
    )
    name = opts.model if opts.method == "model" else opts.method
    return Prepared(job, record, opts, str(name), k, _settings(opts, job))


def _settings(opts: ImputeOptions, job: ImputeJob) -> dict:
    """What an output was made with: a rerun resumes it only with the same settings."""
    layout = job.layout
    return {
        "method": opts.method,
        "model": opts.model,
        "input": opts.input,
        "variables": list(job.variables),
        "dims": list(job.dims),
        "time": list(opts.time) if opts.time else None,
        "k": job.k,
        "seed": opts.seed,
        "level": opts.level,
        "holdout": opts.holdout,
        "holdout_seed": opts.holdout_seed,
        "window": layout.window,
        "stride": layout.stride,
        "block": layout.block,
        "tile": list(layout.tile),
    }


def _ensemble(meta: dict) -> int:
    return int(meta.get("method", {}).get("ensemble", 10))


def plan_text(p: Prepared) -> str:
    lay: Layout = p.job.layout
    frames, h, w = p.record.shape
    n_vars = len(p.job.variables)
    size = frames * h * w * (n_vars * 4 * 4 + 1)
    actors = _actors(p)
    return "\n".join(
        [
            f"impute {p.record.cfg.url} → {p.options.out} with {p.model_name}",
            f"  variables {list(p.job.variables)}, dims {list(p.job.dims)}, "
            f"{frames} frames × {h} × {w}",
            f"  windows: {len(lay.window_starts)} of {lay.window} frames, stride {lay.stride}; "
            f"tiles: {len(lay.tile_corners)} of {lay.tile[0]} × {lay.tile[1]}"
            + (f" (padded to {lay.pad[0]} × {lay.pad[1]})" if lay.pad != lay.tile else ""),
            f"  blocks: {lay.n_blocks} of {lay.block} frames; "
            + (f"{actors} actors (Ray Data)" if actors else "in this process")
            + f"; K = {p.k}; level {p.options.level}",
            f"  output: {len(p.job.variables) * 4 + 1} variables, about {size / 2**20:.1f} MiB "
            "(float32)",
        ]
    )


def _actors(p: Prepared) -> int:
    local = any(u.startswith(LOCAL_ONLY) for u in (p.options.input, p.job.store))
    if p.options.method == "dineof" or local:
        return 0
    return max(0, p.options.actors)


def _template(p: Prepared, record: Record, history: str) -> None:
    ds, cfg = record.ds, record.cfg
    t_dim, y_dim, x_dim = cfg.dims
    coords = {}
    for dim in (t_dim, y_dim, x_dim):
        if dim in ds.coords:
            c = ds[dim]
            if dim == t_dim:
                c = c.isel({dim: record.frames.positions})
            keep = {k: v for k, v in c.encoding.items() if k in ("units", "calendar", "dtype")}
            c = xr.DataArray(c.values, dims=(dim,), attrs=dict(c.attrs), name=dim)
            c.encoding = keep
        else:
            n = len(record.frames.positions) if dim == t_dim else ds.sizes[dim]
            c = xr.DataArray(np.arange(n), dims=(dim,), name=dim)
        coords[dim] = c
    var_dims, attrs, dtypes = {}, {}, {}
    for v, name in zip(cfg.variables, record.names, strict=True):
        base = v.partition("@")[0]
        var_dims[name] = record.var_dims[v]
        attrs[name] = dict(ds[base].attrs)
        dtypes[name] = np.promote_types(ds[base].dtype, np.float32)
    glob = dict(ds.attrs)
    glob["history"] = (str(glob["history"]) + "\n" if glob.get("history") else "") + history
    glob[output.SETTINGS_ATTR] = json.dumps(p.settings, sort_keys=True)
    output.create_template(
        p.job.store,
        coords=coords,
        var_dims=var_dims,
        var_attrs=attrs,
        dtypes=dtypes,
        time_dim=t_dim,
        block=p.job.layout.block,
        n_blocks=p.job.layout.n_blocks,
        attrs=glob,
        flag_dims=record.var_dims[cfg.variables[0]],
    )


def _history(p: Prepared) -> str:
    try:
        version = importlib.metadata.version("incdyn")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return (
        f"{stamp} incdyn {version} impute: {p.model_name} (method {p.options.method}), "
        f"K={p.k}, level={p.options.level}, seed={p.options.seed}, input {p.options.input}"
    )


def _existing(p: Prepared) -> np.ndarray | None:
    """Blocks already done of a resumable output (None: start afresh)."""
    plan = output.output_plan(p.options.out)
    if plan.netcdf and output.exists(plan.url):
        if not p.options.overwrite:
            raise ImputeError(f"--out: {plan.url} exists; give --overwrite to replace it")
        output.remove(plan.url)
    if not output.exists(plan.store):
        return None
    if p.options.overwrite:
        output.remove(plan.store)
        return None
    try:
        done, settings = output.done_blocks(plan.store), output.settings_of(plan.store)
    except Exception:
        raise ImputeError(
            f"--out: {plan.store} exists and is not an incdyn imputation; give --overwrite to "
            "replace it, or another --out"
        ) from None
    if settings != p.settings:
        raise ImputeError(
            f"--out: {plan.store} exists, made with other settings; give --overwrite to replace "
            "it, or rerun with the same options to resume it"
        )
    if done.all() and not plan.netcdf:
        raise ImputeError(
            f"--out: {plan.url} exists and is complete; give --overwrite to replace it"
        )
    return done


def run_impute(opts: ImputeOptions) -> Summary:
    """Run one imputation; returns its summary (``dry_run``: the plan only, nothing read)."""
    started = time.perf_counter()
    p = prepare(opts)
    summary = Summary(output=opts.out, method=p.model_name, level=opts.level)
    summary.plan = {"text": plan_text(p)}
    if opts.dry_run:
        return summary
    done = _existing(p)
    record = p.record.with_domain()
    job = dataclasses.replace(p.job, inside=record.domain)
    p = dataclasses.replace(p, job=job, record=record)
    lay = job.layout
    if done is None:
        _template(p, record, _history(p))
        done = np.zeros(lay.n_blocks, bool)
    todo = [b for b in range(lay.n_blocks) if not done[b]]
    summary.blocks_resumed = int(done.sum())
    rows = _execute(p, todo)
    _summarise(summary, rows, record, lay)
    if output.output_plan(opts.out).netcdf:
        output.finalize_netcdf(output.output_plan(opts.out))
    summary.wall_s = time.perf_counter() - started
    if opts.mlflow:
        from incdyn.platform.impute.tracking import log_imputation

        log_imputation(p, summary)
    return summary


def _bar(p: Prepared, total: int):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc="impute",
        unit="frame",
        dynamic_ncols=True,
        disable=not p.options.progress,
    )


def _execute(p: Prepared, todo: list[int]) -> list[dict]:
    lay = p.job.layout
    total = sum(lay.block_frames(b)[1] - lay.block_frames(b)[0] for b in todo)
    rows: list[dict] = []
    if not todo:
        return rows
    with _bar(p, total) as bar:
        if p.options.method == "dineof":
            for row in _dineof(p, todo):
                rows.append(row)
                bar.update(int(row["frames"][0]))
        elif _actors(p) == 0:
            imputer = BlockImputer(p.job)
            for b in todo:
                row = imputer({"block": np.array([b])})
                rows.append(row)
                bar.update(int(row["frames"][0]))
        else:
            for row in _ray_rows(p, todo):
                rows.append(row)
                bar.update(int(row["frames"][0]))
    return rows


def _ray_rows(p: Prepared, todo: list[int]):
    import ray
    import ray.data  # before init_ray: Ray Data's own console handler is routed with Ray's

    from incdyn.platform.ray_session import init_ray

    init_ray(verbose=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"block": b} for b in todo], override_num_blocks=len(todo))
    out = ds.map_batches(
        BlockImputer,
        fn_constructor_kwargs={"job": p.job},
        batch_size=1,
        batch_format="numpy",
        concurrency=p.options.actors,
        num_cpus=p.options.cpus_per_actor,
        num_gpus=p.options.gpus_per_actor or None,
    )
    yield from out.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0)


def _dineof(p: Prepared, todo: list[int]):
    """Record-scope DINEOF: one reconstruction of the whole range, then written block by block."""
    from incdyn.models.baselines.dineof_record import dineof_record

    job, record = p.job, p.record
    lay = job.layout

    def read(first: int, count: int):
        values, observed, held = observations(job, record, first, first + count)
        return values, observed & ~held

    result = dineof_record(read, lay.frames, job.inside, block=lay.block)
    cols = np.flatnonzero(job.inside.ravel())
    h, w = lay.grid
    for b in todo:
        a, e = lay.block_frames(b)
        values, observed, held = observations(job, record, a, e)
        mean = np.full((e - a, values.shape[1], h * w), np.nan, np.float32)
        mean[:, :, cols] = result.filled[a:e]
        res = write_estimate(
            job, record, None, b, values, observed, held, mean.reshape(e - a, -1, h, w), None
        )
        yield rows_of([res])


def _summarise(summary: Summary, rows: list[dict], record: Record, lay: Layout) -> None:
    summary.blocks = lay.n_blocks
    summary.frames = lay.frames
    if not rows:
        return
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    summary.filled = int(cat["filled"].sum())
    summary.observed = int(cat["observed"].sum())
    summary.inside = int(cat["inside"].sum())
    summary.empty_frames = int(cat["empty_frames"].sum())
    held = cat["held"].sum(axis=0)
    if held.sum() > 0:
        sq, cov = cat["sq_error"].sum(axis=0), cat["covered"].sum(axis=0)
        for i, name in enumerate(record.names):
            n = max(held[i], 1)
            summary.heldout_rmse[name] = float(np.sqrt(sq[i] / n))
            summary.heldout_coverage[name] = float(cov[i] / n)
            summary.heldout_points[name] = int(held[i])
