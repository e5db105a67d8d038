"""Run records: the MLflow runs a report reads, as plain data that a CSV holds exactly.

A :class:`RunRecord` keeps what reports use of one run — its id, experiment, role, parent, spec,
method, setting, seed, status, start and end times, and every tag, param and metric. Reports are
built from records alone, so a CSV of the records (:func:`write_records`) rebuilds the same
report without MLflow (:func:`read_records`): floats are written with ``repr`` and read back to
the same value. Tags are limited to ``incdyn.*`` and MLflow's parent tag (user names, source
paths and git details stay out of the CSV).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from incdyn.platform.tracking import (
    TAG_METHOD,
    TAG_PARENT,
    TAG_ROLE,
    TAG_SEED,
    TAG_SETTING,
    TAG_SPEC,
    TAG_VARIANT,
    search_all,
)

FIXED = ("experiment", "run_id", "run_name", "status", "start_time", "end_time")
TAG_PREFIX, PARAM_PREFIX, METRIC_PREFIX = "tag:", "param:", "metric:"


@dataclass(frozen=True)
class RunRecord:
    experiment: str
    run_id: str
    run_name: str
    status: str
    start_time: int  # ms since the epoch
    end_time: int | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def role(self) -> str | None:
        return self.tags.get(TAG_ROLE)

    @property
    def parent(self) -> str | None:
        return self.tags.get(TAG_PARENT)

    @property
    def spec(self) -> str | None:
        """The spec name: a parent's tag; a child's ``name`` param (the run-wide params)."""
        return self.tags.get(TAG_SPEC) or self.params.get("name")

    @property
    def setting(self) -> str:
        return self.tags.get(TAG_SETTING, "?")

    @property
    def method(self) -> str:
        return self.tags.get(TAG_METHOD, self.run_name or self.run_id)

    @property
    def variant(self) -> str | None:
        return self.tags.get(TAG_VARIANT)

    @property
    def seed(self) -> str:
        return self.tags.get(TAG_SEED, "?")


def _kept_tag(key: str) -> bool:
    return key.startswith("incdyn.") or key == TAG_PARENT


def record_of(run: Run, experiment: str) -> RunRecord:
    return RunRecord(
        experiment=experiment,
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        status=run.info.status,
        start_time=int(run.info.start_time),
        end_time=None if run.info.end_time is None else int(run.info.end_time),
        tags={k: v for k, v in run.data.tags.items() if _kept_tag(k)},
        params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
    )


def mlflow_records(experiment: str, client: MlflowClient) -> list[RunRecord]:
    """Every FINISHED run of ``experiment``, oldest first (its final metric values)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(f"no MLflow experiment {experiment!r}; experiments: {names}")
    runs = search_all(
        client,
        exp.experiment_id,
        "attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    return [record_of(r, experiment) for r in runs]


def write_records(records: list[RunRecord], path: str | Path | None = None) -> str:
    """The records as CSV text (written to ``path`` when given): one line per run, the fixed
    columns, then ``tag:``, ``param:`` and ``metric:`` columns in sorted order."""
    tags = sorted({k for r in records for k in r.tags})
    params = sorted({k for r in records for k in r.params})
    metrics = sorted({k for r in records for k in r.metrics})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            *FIXED,
            *(TAG_PREFIX + k for k in tags),
            *(PARAM_PREFIX + k for k in params),
            *(METRIC_PREFIX + k for k in metrics),
        ]
    )
    for r in records:
        writer.writerow(
            [
                r.experiment,
                r.run_id,
                r.run_name,
                r.status,
                str(r.start_time),
                "" if r.end_time is None else str(r.end_time),
                *(r.tags.get(k, "") for k in tags),
                *(r.params.get(k, "") for k in params),
                *("" if k not in r.metrics else repr(r.metrics[k]) for k in metrics),
            ]
        )
    text = out.getvalue()
    if path is not None:
        Path(path).write_text(text)
    return text


def read_records(path: str | Path) -> list[RunRecord]:
    """The records of a CSV written by :func:`write_records` (an empty cell: not logged)."""
    path = Path(path)
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
    except OSError as exc:
        raise ValueError(f"runs CSV {path}: {exc}") from exc
    missing = [c for c in FIXED if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"runs CSV {path}: columns {missing} missing")

    def pick(row: dict, prefix: str) -> dict[str, str]:
        return {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix) and v != ""}

    return [
        RunRecord(
            experiment=row["experiment"],
            run_id=row["run_id"],
            run_name=row["run_name"],
            status=row["status"],
            start_time=int(row["start_time"]),
            end_time=int(row["end_time"]) if row["end_time"] else None,
            tags=pick(row, TAG_PREFIX),
            params=pick(row, PARAM_PREFIX),
            metrics={k: float(v) for k, v in pick(row, METRIC_PREFIX).items()},
        )
        for row in rows
    ]
