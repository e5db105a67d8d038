"""``incdyn audit SPEC``: the Principle-1 exposure audit of every diffusion method (Theorem 1).

For each method, under the spec's observation-mask family and the method's partition strategy,
estimates ``P(i ∈ query | context)`` for every grid point outside the context (exactly for block
families, by sampling otherwise), prints the minimum and spread, and saves the exposure map.
``incdyn run`` calls :func:`check_exposure` first and refuses a strategy that leaves points with
zero exposure — they would never receive a gradient — unless the method sets
``allow_zero_exposure: true`` (the paper's "incorrect" ablation row in Table 2).
"""

from __future__ import annotations

from pathlib import Path

import torch

from incdyn.datasets.generators import make_config
from incdyn.models.exposure import ExposureReport, audit
from incdyn.models.partition import partition_for
from incdyn.platform.evaluation.exposure_view import exposure_figure, exposure_summary
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec, SpecError, variants_of


def audit_spec(spec: ExperimentSpec, *, samples: int = 2000) -> dict[str, ExposureReport]:
    """Exposure report of every diffusion method, keyed by method name."""
    cfg = make_config(spec.data.source, spec.data.preset, dict(spec.data.params))
    # a tiled record's tile (``patch`` 0, untiled, falls through to the 32 × 32 default)
    grid = getattr(cfg, "grid", None) or getattr(cfg, "patch", None) or None
    h, w = (grid, grid) if isinstance(grid, int) else tuple(grid or (32, 32))
    frames = getattr(cfg, "frames", None) or getattr(cfg, "window", 1)
    family = spec.data.observation
    reports = {}
    for method in spec.methods:
        if not isinstance(method, DiffusionMethod):
            continue
        partition = partition_for(method.partition, family)
        g = torch.Generator().manual_seed(spec.seed)
        reports[method.name] = audit(
            family, partition, frames=frames, h=h, w=w, samples=samples, generator=g
        )
    return reports


def check_exposure(spec: ExperimentSpec) -> dict[str, ExposureReport]:
    """Raise :class:`SpecError` when a method without ``allow_zero_exposure`` has zero exposure."""
    reports = audit_spec(spec)
    bad = [
        m
        for m in spec.methods
        if (r := reports.get(m.name)) is not None
        and r.zero_fraction > 0
        and not m.allow_zero_exposure
    ]
    if bad:
        m = bad[0]
        raise SpecError(
            f"methods.{m.name}.partition",
            "the exposure audit (Theorem 1, Principle 1) found dimensions that are never queried: "
            + "; ".join(f"{b.name}: {exposure_summary(reports[b.name])}" for b in bad),
            "choose a partition with the structure of the observation masks (e.g. partition.kind: "
            "block for block masks), or set allow_zero_exposure: true on the method to run it "
            "anyway",
        )
    return reports


def run_audit(spec: ExperimentSpec, out_dir: str | Path) -> int:
    """Print each method's audit and save its exposure map; returns 1 if any has zero exposure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    for variant in variants_of(spec):
        for name, report in audit_spec(variant).items():
            print(f"[{variant.name}] {name}: {exposure_summary(report)}")
            path = out / f"{variant.name}-{name}-exposure.png"
            exposure_figure(report).savefig(path, dpi=100)
            print(f"  map: {path}")
            if report.zero_fraction > 0:
                status = 1
    return status
