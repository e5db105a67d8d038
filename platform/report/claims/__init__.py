"""The paper's claims checked against MLflow runs alone: ``incdyn report --claims FILE``.

A claims file (YAML, validated like a spec) names the MLflow experiment and, per claim, one or
more *parts*: a data setting (a column of the runs), the methods compared with the paper's number
beside each, the inequalities between method means that the claim asserts (``"ours < missdiff"``),
and the claim's ratio with the paper's value (``ours / missdiff``: paper 1.931 / 3.077 = 0.63).
A part may *select* a row on the validation split — the best of several context/query ratios by
``val_heldout_mse`` (held-out observed points, no truth needed) unless it names ``by: val_mse``
(Table 6) — so that nothing is chosen on test data.

The verdict of a part: every inequality holds between the means over seeds; it is also checked
seed by seed ("holds in k of n seeds"). The ratio target is the paper's ratio or better (lower).
:func:`claims_markdown` writes the whole RESULTS.md: summary, per-claim tables (mean ± std, the
values per seed, the paper's numbers), the command, versions, seeds and the wall time of the
runs (first parent run's start to the last one's end, from MLflow).
"""

from incdyn.platform.report.claims.markdown import claims_markdown
from incdyn.platform.report.claims.schema import ClaimsFile, load_claims
from incdyn.platform.report.claims.verdicts import ClaimsResult, PartResult, check_claims

__all__ = [
    "ClaimsFile",
    "ClaimsResult",
    "PartResult",
    "check_claims",
    "claims_markdown",
    "load_claims",
]
