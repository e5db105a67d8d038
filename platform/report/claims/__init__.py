"""The paper's claims checked against run records: ``incdyn report --claims FILE``.

A claims file (YAML, validated like a spec) names the MLflow experiment and, per claim, one or
more *parts*: a data setting (a column of the runs) read as one of the paper's tables, the
judged metric (the paper's for that table), the methods compared with the paper's number beside
each, the inequalities between method means that the claim asserts (``"ours < missdiff"``), the
claim's ratio with the paper's value, and reference rows shown but never judged (a complete-data
oracle). A part may *select* a row on the validation split — the best of several candidates by
``val_heldout_mse`` (held-out observed points, no truth); validation truth only when the file
says ``allow_truth``, a test metric never — so that nothing is chosen on truth or test data.

The verdict of a part: every inequality holds between the means over seeds; it is also checked
seed by seed ("holds in k of n seeds"). The ratio is set beside the paper's as *stronger* or
*weaker*, a reading, not a target. Reports are built from run records (:mod:`..records`), so
the CSV of the runs used rebuilds RESULTS.md byte for byte without MLflow.
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
