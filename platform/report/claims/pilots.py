"""Pilot runs: a setting (a spec param such as ``training.lr``) chosen among candidates by the
lowest mean of a truth-free validation figure — the rule a protocol states, applied to runs.

Each candidate is one ``incdyn run`` of the spec with the param set to it (the pilot's own seed
and data), logged to the pilots' MLflow experiment. :func:`pilot_choices` groups their method
runs per spec by (method, param value) — a pilot may run several methods, e.g. two readings of
a partition — and ``incdyn report PILOTS --pick PARAM --spec S`` prints the chosen method and
value for the next runs to use; RESULTS.md shows every candidate's figures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from incdyn.platform.report.claims.schema import TRUTH_FREE, truth_free
from incdyn.platform.report.records import RunRecord
from incdyn.platform.report.tables import runs_counted


@dataclass(frozen=True)
class PilotChoice:
    """The pilots of one spec: every (method, param value) candidate and the chosen one."""

    spec: str
    param: str
    by: str
    candidates: dict[tuple[str, str], tuple[float, int]]  # (method, value) → (mean of by, runs)

    @property
    def chosen(self) -> tuple[str, str]:
        """The (method, value) with the lowest mean (the first listed on a tie)."""
        return min(self.candidates, key=lambda c: self.candidates[c][0])


def check_criterion(by: str, allow_truth: bool = False) -> None:
    """Refuse a test metric always, and validation truth unless ``allow_truth``."""
    if not by.startswith("val_"):
        raise ValueError(
            f"pilots choose on the validation split only; {by!r} is not a val_* metric"
        )
    if not truth_free(by) and not allow_truth:
        raise ValueError(
            f"{by!r} reads validation truth: choose on one of {list(TRUTH_FREE)} "
            "(or allow truth explicitly)"
        )


def pilot_choices(
    records: list[RunRecord],
    param: str,
    by: str = "val_heldout_mse",
    *,
    spec: str | None = None,
    method: str | None = None,
    allow_truth: bool = False,
) -> list[PilotChoice]:
    """One choice per spec among every finished pilot run that logged ``param`` and ``by``: the
    method (when a pilot runs several, e.g. two partitions) and the param value; ``spec`` and
    ``method`` narrow the runs down."""
    check_criterion(by, allow_truth)
    _, children = runs_counted(records, "all")
    groups: dict[str, dict[tuple[str, str], list[float]]] = {}
    for r in children:
        if param not in r.params or by not in r.metrics:
            continue
        if (spec and r.spec != spec) or (method and r.method != method):
            continue
        key = (r.method, r.params[param])
        groups.setdefault(r.spec or "?", {}).setdefault(key, []).append(r.metrics[by])
    return [
        PilotChoice(s, param, by, {c: (statistics.fmean(xs), len(xs)) for c, xs in values.items()})
        for s, values in groups.items()
    ]
