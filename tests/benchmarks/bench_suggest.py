"""Where to observe next, measured: the variance rule against spread and random at equal N.

For each test window of an experiment's store, each seed and each rule, the trained model
(``ours`` of the experiment) chooses ``N`` points of one frame; their values are revealed, the
window is imputed again, and the error is scored on the points that stayed unknown:

- with truth (a simulator's or a benchmark's test split): candidates are the unobserved points
  inside the domain, the revealed values are the truth, and the score is the MSE against the
  truth at the unobserved points that were not revealed (all frames);
- without truth (``--heldout``): candidates are the held-out observed points of the frame
  (withheld from the model), the revealed values are their observed values, and the score is
  the MSE at the held-out points that were not revealed.

Before and after are scored on the same points with the same ensemble seed, so the reduction is
what revealing the chosen points did. Reported per rule: the mean error reduction per revealed
point (training-std units², mean over windows and seeds), its ratio to ``random`` and ``spread``,
and the wall time of one suggestion.

    python tests/benchmarks/bench_suggest.py --spec experiments/quickstart.yaml --workdir W
    python tests/benchmarks/bench_suggest.py --spec experiments/suggest/ncep_air.yaml \
        --workdir W --heldout

``--workdir`` holds the experiment (its store, MLflow store and checkpoints): the spec is run
there with ``incdyn run`` first unless a finished ``ours`` run is found. ``--checkpoint DIR
--store URL`` measures a given checkpoint on a given store instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import torch

from incdyn.datasets.store import open_split
from incdyn.models.samplers.single import ensemble_impute
from incdyn.platform.checkpoint import checkpoint_spec, load_denoiser
from incdyn.platform.registry.model_source import resolve_checkpoint
from incdyn.platform.sampling import sampler_plan
from incdyn.platform.spec import load_spec
from incdyn.platform.suggest.window import UnitRequest, suggest_window
from incdyn.platform.tracking import TAG_METHOD, resolve_tracking_uri

RULES = ("variance", "spread", "random")


def trained_checkpoint(spec_path: Path, workdir: Path) -> tuple[Path, str]:
    """The ``ours`` checkpoint of the experiment in ``workdir`` (run there first if absent)."""
    spec = load_spec(spec_path)
    uri = resolve_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")

    def finished() -> list:
        experiment = mlflow.MlflowClient(uri).get_experiment_by_name(spec.experiment_name)
        if experiment is None:
            return []
        return mlflow.MlflowClient(uri).search_runs(
            [experiment.experiment_id],
            f"tags.{TAG_METHOD} = 'ours' and attributes.status = 'FINISHED'",
        )

    if not finished():
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        incdyn = str(Path(sys.executable).with_name("incdyn"))
        subprocess.run([incdyn, "run", str(spec_path.resolve())], cwd=workdir, env=env, check=True)
    run = finished()[0]
    store = str(workdir / spec.store_url) if "://" not in spec.store_url else spec.store_url
    return resolve_checkpoint(run.info.run_id, uri), store


def _window(ds, i: int, mean: np.ndarray, std: np.ndarray, heldout: bool):
    """Normalised observed field ``(C, T, H, W)`` (0 where unknown), the model's mask, the
    candidates' values and the scoring mask, for test sample ``i``."""
    field = ds["field"][i].values.transpose(1, 0, 2, 3)  # (C, T, H, W)
    mask = ds["mask"][i].values.astype(bool)
    domain = ds["domain"].values.astype(bool) if "domain" in ds else np.ones(mask.shape[1:], bool)
    if heldout:
        hold = ds["holdout"][i].values.astype(bool)
        given, hidden, values = mask & ~hold, hold, field
    else:
        given, hidden = mask, ~mask & domain[None]
        values = ds["truth"][i].values.transpose(1, 0, 2, 3)
    norm = (values - mean) / std
    x = np.where(given[None], (field - mean) / std, 0.0).astype(np.float32)
    return x, given, hidden, norm.astype(np.float32), domain


def _impute(denoiser, plan, x, mask, seed):
    g = torch.Generator().manual_seed(seed)
    out, _ = ensemble_impute(
        denoiser, torch.from_numpy(x)[None], torch.from_numpy(mask)[None], plan.partition,
        k=plan.k, generator=g, max_batch=plan.max_batch, max_points=plan.max_points,
    )  # fmt: skip
    return out[0].numpy()


def measure(checkpoint: Path, store: str, *, heldout: bool, budget: int, samples: int,
            seeds: list[int], noise: float) -> dict:  # fmt: skip
    denoiser, meta = load_denoiser(checkpoint)
    plan = sampler_plan(*checkpoint_spec(meta))
    norm = meta["normalization"]
    mean = np.asarray(norm["mean"], np.float32).reshape(-1, 1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(-1, 1, 1, 1)
    ds = open_split(store, "test", ("holdout",) if heldout else ("truth",), dask=False)
    per_rule = {r: [] for r in RULES}
    times = {r: [] for r in RULES}
    for i in range(min(samples, ds.sizes["sample"])):
        x, given, hidden, values, domain = _window(ds, i, mean, std, heldout)
        frame = x.shape[1] // 2
        if hidden[frame].sum() < budget + 1:
            continue
        for seed in seeds:
            before = _impute(denoiser, plan, x, given, seed)
            for rule in RULES:
                request = UnitRequest(
                    frame=frame, budget=budget, rule=rule, noise=noise,
                    candidates=torch.from_numpy(hidden[frame]),
                )  # fmt: skip
                start = time.perf_counter()
                out = suggest_window(
                    denoiser, plan, torch.from_numpy(x), torch.from_numpy(given), request,
                    domain=torch.from_numpy(domain), generator=torch.Generator().manual_seed(seed),
                )  # fmt: skip
                times[rule].append(time.perf_counter() - start)
                revealed = np.zeros_like(given)
                for p in out.picks:
                    revealed[frame, p["y"], p["x"]] = True
                x2 = np.where(revealed[None], values, x)
                after = _impute(denoiser, plan, x2, given | revealed, seed)
                scored = np.broadcast_to((hidden & ~revealed)[None], x.shape)
                sse_before = float(((before - values)[scored] ** 2).sum())
                sse_after = float(((after - values)[scored] ** 2).sum())
                per_rule[rule].append(
                    {"sample": i, "seed": seed, "mse_before": sse_before / scored.sum(),
                     "mse_after": sse_after / scored.sum(),
                     "reduction_per_point": (sse_before - sse_after) / scored.sum() / budget}
                )  # fmt: skip
    summary = {}
    for rule in RULES:
        red = [r["reduction_per_point"] for r in per_rule[rule]]
        summary[rule] = {
            "windows_x_seeds": len(red),
            "reduction_per_point": statistics.fmean(red) if red else float("nan"),
            "mse_before": statistics.fmean(r["mse_before"] for r in per_rule[rule]),
            "mse_after": statistics.fmean(r["mse_after"] for r in per_rule[rule]),
            "seconds_per_suggestion": statistics.median(times[rule]),
        }
    base = summary["variance"]["reduction_per_point"]
    for ref in ("random", "spread"):
        summary[f"variance_over_{ref}"] = base / summary[ref]["reduction_per_point"]
    return {"summary": summary, "runs": per_rule}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, help="the experiment (run in --workdir if needed)")
    parser.add_argument("--workdir", type=Path, help="where the experiment's files live")
    parser.add_argument("--checkpoint", type=Path, help="a trained checkpoint, instead of --spec")
    parser.add_argument("--store", help="the store its test split is read from (with --checkpoint)")
    parser.add_argument("--heldout", action="store_true", help="score on held-out points only")
    parser.add_argument("--budget", type=int, default=10, help="points revealed per window")
    parser.add_argument("--samples", type=int, default=16, help="test windows")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--noise", type=float, default=0.05, help="noise std, training-std units")
    parser.add_argument("--out", type=Path, help="JSON of every run and the summary")
    args = parser.parse_args()
    if args.checkpoint:
        checkpoint, store = args.checkpoint, args.store
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        checkpoint, store = trained_checkpoint(args.spec, args.workdir.resolve())
    result = measure(checkpoint, store, heldout=args.heldout, budget=args.budget,
                     samples=args.samples, seeds=args.seeds, noise=args.noise)  # fmt: skip
    result["args"] = {k: str(v) for k, v in vars(args).items()}
    for rule in RULES:
        s = result["summary"][rule]
        print(f"{rule:>9}: reduction per revealed point {s['reduction_per_point']:.4g} "
              f"(MSE {s['mse_before']:.4g} -> {s['mse_after']:.4g}, {s['windows_x_seeds']} "
              f"windows x seeds), {s['seconds_per_suggestion']:.3g} s per suggestion")  # fmt: skip
    print(f"variance / random {result['summary']['variance_over_random']:.3g}, "
          f"variance / spread {result['summary']['variance_over_spread']:.3g}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
