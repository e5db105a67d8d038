"""Ray Train's fixed cost per ``fit()`` on a running local Ray, with Ray's defaults and with
incdyn's settings (``pin_address`` in every worker process, ``apply_fit_env``'s poll interval).

A 1-worker ``TorchTrainer`` whose loop does nothing but one ``ray.train.report`` is fitted
``--rounds`` times per configuration, alternating (defaults, incdyn, defaults, ...) in this
process; each configuration gets its own local Ray instance (the worker process setup hook is
the job's), started before the clock runs. Per fit: ``fit()``'s wall time, the time from
``fit()``'s call to the worker loop's first line (controller, placement group, worker process
start, torch.distributed init) and from the loop's last line to ``fit()``'s return (teardown).

    .venv/bin/python tests/benchmarks/bench_fixed.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray
import ray.train
from ray.train.torch import TorchTrainer

from incdyn.platform.ray_session import PINNED_RUNTIME_ENV
from incdyn.platform.train.driver import HEALTH_CHECK_ENV, apply_fit_env


def _loop(config) -> None:
    entered = time.time()
    ray.train.report({"entered": entered})
    Path(config["out"]).write_text(json.dumps({"entered": entered, "left": time.time()}))


def one_fit(workdir: Path, tag: str) -> dict[str, float]:
    out = workdir / f"{tag}.json"
    t0 = time.time()
    result = TorchTrainer(
        _loop,
        train_loop_config={"out": str(out)},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(name=tag, storage_path=str(workdir / "runs")),
    ).fit()
    t1 = time.time()
    if result.error:
        raise RuntimeError(f"fit failed: {result.error}")
    seen = json.loads(out.read_text())
    return {"fit_s": t1 - t0, "to_loop_s": seen["entered"] - t0, "teardown_s": t1 - seen["left"]}


def run(rounds: int) -> dict[str, list[dict[str, float]]]:
    os.environ.setdefault("RAY_worker_niceness", "0")  # as run_all.py: Ray's own costs
    user_knob = os.environ.pop(HEALTH_CHECK_ENV, None)
    figures: dict[str, list[dict[str, float]]] = {"ray defaults": [], "incdyn": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for name in figures:
                incdyn = name == "incdyn"
                os.environ.pop(HEALTH_CHECK_ENV, None)
                if incdyn:
                    apply_fit_env()
                ray.init(address="local", num_cpus=2, logging_level="ERROR", log_to_driver=False,
                         runtime_env=PINNED_RUNTIME_ENV if incdyn else None)  # fmt: skip
                try:
                    figures[name].append(one_fit(Path(tmp), f"r{i}-{int(incdyn)}"))
                finally:
                    ray.shutdown()
    os.environ.pop(HEALTH_CHECK_ENV, None)
    if user_knob is not None:
        os.environ[HEALTH_CHECK_ENV] = user_knob
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    figures = run(parser.parse_args().rounds)
    print(f"{'configuration':<14} {'fit() s':>16} {'to loop s':>16} {'teardown s':>16}")
    for name, fits in figures.items():
        cells = []
        for key in ("fit_s", "to_loop_s", "teardown_s"):
            values = [f[key] for f in fits]
            cells.append(f"{statistics.median(values):6.2f} (min {min(values):5.2f})")
        print(f"{name:<14} " + " ".join(f"{c:>16}" for c in cells))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
