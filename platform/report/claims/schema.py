"""The claims file: per claim the data setting, the methods compared, the inequalities asserted
and the ratio beside the paper's, validated like a spec."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from incdyn.platform.spec import Strict

INEQUALITY = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*<\s*([A-Za-z0-9_.\-]+)\s*$")


class RatioSpec(Strict):
    """``num / den`` of the row means; ``paper`` is the paper's value of the same ratio."""

    label: str
    num: str
    den: str
    paper: float = Field(gt=0.0)


# What a row may be chosen by: truth-free validation figures. ``val_heldout_mse`` scores the
# imputation of held-out observed validation points, ``val_loss`` is the training objective on
# the validation split's observed data; neither reads ground truth.
TRUTH_FREE = ("val_heldout_mse", "val_loss")


def truth_free(metric: str) -> bool:
    """True for a validation figure that needs no ground truth (per-sampler variants too)."""
    return any(metric == m or metric.startswith(m + "_") for m in TRUTH_FREE)


class SelectSpec(Strict):
    """A row chosen on the validation split: the lowest mean of ``by`` among ``among``.

    ``by`` is truth-free (``val_heldout_mse``: held-out observed points) unless ``allow_truth``
    says otherwise; a test metric is never accepted. ``follow`` names further rows that go with
    the choice: ``{alias: [row per candidate of among, in the same order]}`` (e.g. the direct
    call of the same trained model).
    """

    name: str  # how the inequalities and the ratio refer to the chosen row
    among: list[str] = Field(min_length=1)
    by: str = "val_heldout_mse"
    allow_truth: bool = False  # choose on validation truth (val_mse): never in a reproduction
    follow: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _validation_only(self) -> SelectSpec:
        if not self.by.startswith("val_"):
            raise ValueError(
                f"select.by {self.by!r}: rows are chosen on the validation split only "
                f"(a val_* metric; truth-free: {list(TRUTH_FREE)})"
            )
        if not truth_free(self.by) and not self.allow_truth:
            raise ValueError(
                f"select.by {self.by!r} reads validation truth: choose on one of "
                f"{list(TRUTH_FREE)}, or set allow_truth: true to say so"
            )
        for alias, rows in self.follow.items():
            if len(rows) != len(self.among):
                raise ValueError(
                    f"select.follow.{alias}: {len(rows)} rows for {len(self.among)} candidates"
                )
        return self


class PartSpec(Strict):
    """One reading of a claim on one setting: rows (method → paper number or null), the
    inequalities judged, the ratio beside the paper's, reference rows shown but not judged."""

    setting: str  # the runs' ``incdyn.setting`` tag, e.g. "navier_stokes pixel 20%"
    reading: str = ""  # which table of the paper this part reads (e.g. "Table 6")
    metric: str | None = None  # the judged metric (the paper's for that table); None: the file's
    also: list[str] = []  # further metrics shown beside it (e.g. test_mse)
    rows: dict[str, float | None] = Field(min_length=1)
    select: SelectSpec | None = None
    holds_if: list[str] = Field(min_length=1)  # "a < b" between row means
    informational: list[str] = []  # "a < b" shown, not part of the verdict
    ratio: RatioSpec
    reference: dict[str, str] = {}  # row → label: shown, never judged (a complete-data oracle)

    def aliases(self) -> set[str]:
        return ({self.select.name} | set(self.select.follow)) if self.select else set()

    @model_validator(mode="after")
    def _names_known(self) -> PartSpec:
        known = set(self.rows) | self.aliases()
        if self.select:
            chosen_from = set(self.select.among) | {
                r for rows in self.select.follow.values() for r in rows
            }
            if not chosen_from <= set(self.rows):
                raise ValueError(
                    f"select rows {sorted(chosen_from - set(self.rows))} must be rows of "
                    f"{sorted(self.rows)}"
                )
        if not set(self.reference) <= set(self.rows):
            raise ValueError(f"reference rows {sorted(self.reference)} must be rows")
        for text in [*self.holds_if, *self.informational]:
            match = INEQUALITY.match(text)
            if not match:
                raise ValueError(f"inequality {text!r} must read 'a < b' with two row names")
            unknown = {match[1], match[2]} - known
            if unknown:
                raise ValueError(f"inequality {text!r}: {sorted(unknown)} not in {sorted(known)}")
            if {match[1], match[2]} & set(self.reference):
                raise ValueError(f"inequality {text!r}: a reference row is never judged")
        unknown = {self.ratio.num, self.ratio.den} - known
        if unknown:
            raise ValueError(
                f"ratio {self.ratio.label!r}: {sorted(unknown)} not in {sorted(known)}"
            )
        return self


class ClaimSpec(Strict):
    id: int
    title: str
    statement: str  # the claim in words
    parts: list[PartSpec] = Field(min_length=1)
    notes: str = ""  # what was tried, caveats (written into RESULTS.md)


class PilotsSpec(Strict):
    """Pilot runs that chose a setting before the claims' runs (their own MLflow experiment)."""

    experiment: str
    param: str = "training.lr"  # the spec param the pilots vary
    by: str = "val_heldout_mse"  # the truth-free figure that chooses

    @model_validator(mode="after")
    def _truth_free(self) -> PilotsSpec:
        if not truth_free(self.by):
            raise ValueError(f"pilots.by {self.by!r}: choose on one of {list(TRUTH_FREE)}")
        return self


class ClaimsFile(Strict):
    title: str
    experiment: str  # the MLflow experiment every spec of the set logs to
    pilots: PilotsSpec | None = None  # the pilot runs (exported beside the claims' runs)
    metric: str = "test_mse"
    command: str  # the one command that regenerates the file
    protocol: str = ""  # the protocol the runs follow (a path, named in RESULTS.md)
    specs: list[str] = []  # the specs of the set (listed in RESULTS.md)
    scale: str = ""  # the reduced scale, in words
    claims: list[ClaimSpec] = Field(min_length=1)


def load_claims(path: str | Path) -> ClaimsFile:
    """Parse and validate a claims file; errors name the field and the problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"claims file {path}: {exc}") from exc
    try:
        return ClaimsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"claims file {path}: {problems}") from exc
