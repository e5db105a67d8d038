"""Ensemble verification of a trained diffusion method: its own pass over the splits, after the
test imputation, with its own generator (the imputation's numbers are untouched).

Points outside the data set's domain (``domain`` in the store: ``(y, x)``, or ``(sample, y, x)``
when each sample has its own) are never scored; without truth in the test split (a data set's
own gaps) steps 1–3 are skipped and step 4 is all there is.

1. **Test, unobserved truth points**: spread–skill, CRPS, rank histogram and coverage of the
   method's sampler's members (:mod:`incdyn.datasets.metrics.ensemble_scores`).
2. **Error against K (Theorem 2)**: one single-step pass with ``max(ks)`` members per sample; the
   ensemble of size K is its first K members (members are i.i.d. given the data, so a prefix is
   a K-member ensemble, and nested prefixes share their draws, which steadies the curve). Test
   MSE at each K as ``test_mse`` counts it, and the least-squares fit ``a + b/K``: ``a`` the
   information gap plus the model's bias, ``b`` the context-dependent variance.
3. **Single vs multi-step members**: both samplers' ensembles on the first ``draw_samples``
   test samples (multi-step: independent runs of Alg. 4); ``test_better_calibrated`` is 0 when
   the single-step spread–skill is the nearer to 1, 1 when the multi-step's is.
4. **Held-out observed points** (truth-free), where the split carries a ``holdout`` variable:
   the points are withheld from the model and scored against their observed values
   (``*_heldout``). On the validation split they fit the split-conformal calibration
   (:mod:`incdyn.platform.evaluation.calibration`), then applied to the test split's points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from incdyn.datasets.metrics.ensemble_scores import LEVELS, EnsembleScores, points_of
from incdyn.datasets.store import broadcast_domain, domain_of_samples, open_split, store_domain
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.samplers.members import sampler_members
from incdyn.models.samplers.registry import SamplerPlan
from incdyn.platform.evaluation.calibration import CALIBRATION_FILE, Calibration, fit_calibration
from incdyn.platform.spec import ExperimentSpec

HOLDOUT = "holdout"  # bool (sample, time, y, x) in val/test: observed points withheld


@dataclass
class Verification:
    """What the pass found.

    Attributes:
        metrics: flat ``test_*``/``val_*`` scores, ``test_mse_k{K}``, the fit ``a``, ``b``.
        ranks: rank-histogram counts per scored set (``test``, ``test_heldout``, ...).
        k_curve: ``{K: test MSE}``; fit: ``(a, b)`` of ``a + b/K``.
        calibration: fitted on the validation split's held-out points, or None.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, list[int]] = field(default_factory=dict)
    k_curve: dict[int, float] = field(default_factory=dict)
    fit: tuple[float, float] | None = None
    calibration: Calibration | None = None


def heldout_of(store_url: str, split: str) -> np.ndarray | None:
    """The split's held-out observed points, bool ``(sample, time, y, x)``, or None when the
    store has none (the wiring point of held-out evaluation: its ``holdout`` variable)."""
    ds = open_split(store_url, split)
    return ds[HOLDOUT].values.astype(bool) if HOLDOUT in ds else None


def domain_of(store_url: str, split: str) -> np.ndarray:
    """bool ``(H, W)``, or ``(sample, H, W)`` when each sample has its own: the points inside the
    data set's domain (all of them without one)."""
    ds = open_split(store_url, split)
    inside = store_domain(ds)
    return np.ones((ds.sizes["y"], ds.sizes["x"]), bool) if inside is None else inside


def fit_k_curve(curve: dict[int, float]) -> tuple[float, float] | None:
    """Least-squares ``(a, b)`` of ``MSE(K) ≈ a + b/K`` (Theorem 2); None with < 2 sizes."""
    if len(curve) < 2:
        return None
    ks = np.array(sorted(curve), dtype=np.float64)
    b, a = np.polyfit(1.0 / ks, [curve[int(k)] for k in ks], 1)
    return float(a), float(b)


def _loader(store_url: str, split: str, limit: int | None, batch: int, truth: bool = True) -> tuple:
    data = SplitDataset(store_url, split, with_truth=truth, limit=limit)
    return data, DataLoader(data, batch_size=batch)


def _members(kind, denoiser, x, m, plan: SamplerPlan, n: int, g) -> torch.Tensor:
    """``n`` members of sampler ``kind``: ``(B, n, C, T, H, W)``."""
    return sampler_members(kind, denoiser, x, m, plan, members=n, generator=g)


def _own_size(kind: str, plan: SamplerPlan, draws: int) -> int:
    """The members of a method's own ensemble: its K, or the multi-step sampler's draws."""
    return draws if kind == "multi" else plan.k


def _test_pass(denoiser, spec: ExperimentSpec, plan: SamplerPlan, kind: str, *, store_url: str,
               limit: int | None, device: str, g: torch.Generator,
               calibration: Calibration | None) -> Verification:  # fmt: skip
    """Steps 1–3 on the test split's unobserved truth points."""
    v = spec.evaluation.verification
    data, loader = _loader(store_url, "test", limit, spec.evaluation.batch_size)
    k_max = max([*v.ks, plan.k])
    primary = EnsembleScores(data.channels, plan.k if kind != "multi" else v.draws, seed=spec.seed)
    compare = {"single": EnsembleScores(data.channels, plan.k, seed=spec.seed)}
    compare["multi"] = EnsembleScores(data.channels, v.draws, seed=spec.seed)
    sq = dict.fromkeys(v.ks, 0.0)
    levels = calibration.at(LEVELS) if calibration is not None else None
    inside = domain_of(store_url, "test")  # points outside the domain are never scored
    count, seen = 0, 0
    for batch in loader:
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        mask, truth = batch["mask"].numpy(), batch["truth"].numpy()
        here = domain_of_samples(inside, batch["index"].numpy())  # this batch's samples
        hidden = ~mask & broadcast_domain(here, mask.shape)
        here = broadcast_domain(here, truth.shape)
        single = _members("single", denoiser, x, m, plan, k_max, g)
        observed = m[:, None].expand_as(x)
        for k in v.ks:
            mean = torch.where(observed, x, single[:, :k].mean(1)).cpu().numpy()
            sq[k] += float(((mean - truth) ** 2)[here].sum())
        count += int(here.sum())
        own = (
            single[:, : plan.k]
            if kind == "single"
            else _members(kind, denoiser, x, m, plan, _own_size(kind, plan, v.draws), g)
        )
        primary.update(own.cpu().numpy(), truth, hidden, calibration=levels)
        n = x.shape[0] if v.draw_samples is None else max(0, min(x.shape[0], v.draw_samples - seen))
        if n and kind in ("single", "multi"):
            sl = slice(0, n)
            compare["single"].update(single[sl, : plan.k].cpu().numpy(), truth[sl], hidden[sl])
            multi = (
                own
                if kind == "multi"
                else _members("multi", denoiser, x[sl], m[sl], plan, v.draws, g)
            )
            compare["multi"].update(multi[sl].cpu().numpy(), truth[sl], hidden[sl])
        seen += x.shape[0]
    out = Verification(metrics=primary.result("test"), ranks={"test": primary.ranks.tolist()})
    out.k_curve = {k: sq[k] / count for k in v.ks}
    out.fit = fit_k_curve(out.k_curve)
    out.metrics.update({f"test_mse_k{k}": value for k, value in out.k_curve.items()})
    if out.fit is not None:
        out.metrics.update(test_mse_k_fit_a=out.fit[0], test_mse_k_fit_b=out.fit[1])
    if compare["multi"].count:
        for name, acc in compare.items():
            out.metrics.update(acc.result("test", f"_{name}"))
        gap = {n: abs(np.log(max(a.spread_skill(), 1e-12))) for n, a in compare.items()}
        out.metrics["test_better_calibrated"] = float(gap["multi"] < gap["single"])
    return out


def _heldout_pass(denoiser, spec: ExperimentSpec, plan: SamplerPlan, kind: str, split: str,
                  holdout: np.ndarray, *, store_url: str, limit: int | None, device: str,
                  g: torch.Generator, calibration: Calibration | None):  # fmt: skip
    """Step 4: withhold ``holdout`` from the model, score the members there against the observed
    values; returns the scores and ``(|x̄ − y|, σ, channel)`` of every held-out point."""
    v = spec.evaluation.verification
    data, loader = _loader(store_url, split, limit, spec.evaluation.batch_size, truth=False)
    acc = EnsembleScores(data.channels, plan.k if kind != "multi" else v.draws, seed=spec.seed)
    levels = calibration.at(LEVELS) if calibration is not None else None
    err, spread, chan = [], [], []
    for batch in loader:
        mask = batch["mask"].numpy()
        points = mask & holdout[batch["index"].numpy()]
        x = batch["x_obs"].to(device)
        shown = torch.from_numpy(mask & ~points).to(device)
        n = _own_size(kind, plan, v.draws)
        members = _members(kind, denoiser, x, shown, plan, n, g).cpu().numpy()
        target = batch["x_obs"].numpy()
        acc.update(members, target, points, calibration=levels)
        m, y, ch = points_of(members, target, points)
        err.append(np.abs(m.mean(1) - y))
        spread.append(m.std(1))
        chan.append(ch)
    return acc, (np.concatenate(err), np.concatenate(spread), np.concatenate(chan))


def verify_diffusion(
    denoiser,
    spec: ExperimentSpec,
    plan: SamplerPlan,
    kind: str,
    *,
    store_url: str,
    limit: int | None,
    device: str,
) -> Verification:
    """Steps 1–4 for a method imputing with sampler ``kind`` (``single``, ``multi``, ``direct``);
    ``limit``: test samples (as the test imputation). Scores in training-std units."""
    v = spec.evaluation.verification
    t0 = time.perf_counter()
    g = torch.Generator(device=device).manual_seed(spec.seed + v.seed_offset)
    common = dict(store_url=store_url, device=device, g=g)
    calibration, val_metrics = None, {}
    holdout = heldout_of(store_url, "val")
    if holdout is not None:
        acc, (err, spread, chan) = _heldout_pass(
            denoiser, spec, plan, kind, "val", holdout,
            limit=spec.evaluation.val_samples, calibration=None, **common,
        )  # fmt: skip
        val_metrics = acc.result("val", "_heldout")
        calibration = fit_calibration(
            err, spread, chan, acc.channels, k=acc.k, sampler=kind,
            fitted_on="val held-out observed points",
        )  # fmt: skip
    if "truth" in open_split(store_url, "test"):
        out = _test_pass(denoiser, spec, plan, kind, limit=limit, calibration=calibration, **common)
    else:  # a data set's own gaps: no truth, held-out observed points are all there is
        out = Verification()
    out.metrics.update(val_metrics)
    out.calibration = calibration
    holdout = heldout_of(store_url, "test")
    if holdout is not None:
        acc, _ = _heldout_pass(
            denoiser, spec, plan, kind, "test", holdout, limit=limit, calibration=calibration,
            **common,
        )  # fmt: skip
        out.metrics.update(acc.result("test", "_heldout"))
        out.ranks["test_heldout"] = acc.ranks.tolist()
    out.metrics["verification_seconds"] = time.perf_counter() - t0  # what the pass costs
    return out


RANKS_FIGURE = "figures/rank_histogram.png"
K_CURVE_FIGURE = "figures/error_vs_k.png"


def log_verification(client, run_id: str, verification: Verification, *, title: str) -> None:
    """Figures, rank counts and K-curve (``verification.json``) and the calibration
    (``calibration.json``, also inside the ``checkpoint`` artifact that serving downloads)."""
    from incdyn.platform.evaluation.verification_figures import (
        k_curve_figure,
        rank_histogram_figure,
    )

    record = {"ranks": verification.ranks, "k_curve": verification.k_curve, "fit": verification.fit}
    client.log_dict(run_id, record, "verification.json")
    if verification.ranks:
        client.log_figure(
            run_id, rank_histogram_figure(verification.ranks, title=title), RANKS_FIGURE
        )
    if verification.k_curve:
        curves = {"test": (verification.k_curve, verification.fit)}
        client.log_figure(run_id, k_curve_figure(curves, title=title), K_CURVE_FIGURE)
    if verification.calibration is not None:
        text = verification.calibration.to_json()
        client.log_text(run_id, text, CALIBRATION_FILE)
        client.log_text(run_id, text, f"checkpoint/{CALIBRATION_FILE}")
