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


class SelectSpec(Strict):
    """A row chosen on the validation split: the lowest mean of ``by`` among ``among``."""

    name: str  # how the inequalities and the ratio refer to the chosen row
    among: list[str] = Field(min_length=1)
    by: str = "val_heldout_mse"  # truth-free; val_mse (validation truth) only when named


class PartSpec(Strict):
    """One setting of a claim: rows (method → paper number or null), inequalities, ratio."""

    setting: str  # the runs' ``incdyn.setting`` tag, e.g. "navier_stokes pixel 20%"
    metric: str | None = None  # None: the file's metric
    also: list[str] = []  # further metrics shown beside it (e.g. test_feasibility)
    rows: dict[str, float | None] = Field(min_length=1)
    select: SelectSpec | None = None
    holds_if: list[str] = Field(min_length=1)  # "a < b" between row means
    informational: list[str] = []  # "a < b" shown, not part of the verdict
    ratio: RatioSpec

    @model_validator(mode="after")
    def _names_known(self) -> PartSpec:
        known = set(self.rows) | ({self.select.name} if self.select else set())
        if self.select and not set(self.select.among) <= set(self.rows):
            raise ValueError(
                f"select.among {self.select.among} must be rows of {sorted(self.rows)}"
            )
        for text in [*self.holds_if, *self.informational]:
            match = INEQUALITY.match(text)
            if not match:
                raise ValueError(f"inequality {text!r} must read 'a < b' with two row names")
            unknown = {match[1], match[2]} - known
            if unknown:
                raise ValueError(f"inequality {text!r}: {sorted(unknown)} not in {sorted(known)}")
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


class ClaimsFile(Strict):
    title: str
    experiment: str  # the MLflow experiment every spec of the set logs to
    metric: str = "test_mse"
    command: str  # the one command that regenerates the file
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
