#!/usr/bin/env bash
# The real-record comparison under experiments/real/PROTOCOL.md: for each record, the pilot
# (profile `pilot`), the budget rule (budget.py, validation held-out points only), the run of
# every method with that budget for three seeds; then the CSVs and RESULTS.md (results.py).
#   bash experiments/real/run.sh [pilot|main|results|all] [RECORD ...]   (default: all, both)
# `main` alone takes the budget from the committed pilots' curve (experiments/real/pilot_curve.csv)
# when $REAL_DIR holds none.
# Run from anywhere; files go to $REAL_DIR (default outputs/real): stores, checkpoints,
# mlflow.db. The records are read from ../shared/data/ (the specs' data.params.url; any local
# copy works with --set data.params.url=PATH in the specs' commands).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/experiments/real"
stage="${1:-all}"; shift || true
records=("$@"); [ ${#records[@]} -gt 0 ] || records=(ncep_air cobe_sst2)
work="${REAL_DIR:-$root/outputs/real}"
mkdir -p "$work"; work="$(cd "$work" && pwd)"
cd "$root"  # the specs' data.params.url are relative to the project's root
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db"
export RAY_USAGE_STATS_ENABLED=0
python="${PYTHON:-$root/.venv/bin/python}"
where=(--set "data.store=$work/data/{name}.zarr" --set "ray.storage_path=$work/runs")
for rec in "${records[@]}"; do
  spec="$here/$rec.yaml"
  if [ "$stage" = pilot ] || [ "$stage" = all ]; then
    "$python" -m incdyn.platform.cli run "$spec" --set profile=pilot "${where[@]}"
  fi
  if [ "$stage" = main ] || [ "$stage" = all ]; then
    if [ "$stage" = main ] && [ -f "$here/pilot_curve.csv" ] && [ ! -f "$work/pilot_curve.csv" ]; then
      cp "$here/pilot_curve.csv" "$work/pilot_curve.csv"  # the committed pilots' curve
    fi
    if [ "$stage" = main ] && grep -q "^real_$rec," "$work/pilot_curve.csv" 2>/dev/null; then
      steps="$("$python" "$here/budget.py" --spec "real_$rec" --from-curve "$work/pilot_curve.csv" | tail -1)"
    else
      steps="$("$python" "$here/budget.py" --spec "real_$rec" --curve "$work/pilot_curve.csv" | tail -1)"
    fi
    echo "real_$rec: training.steps=$steps (the protocol's rule)"
    "$python" -m incdyn.platform.cli run "$spec" --set "training.steps=$steps" "${where[@]}"
  fi
done
if [ "$stage" = results ] || [ "$stage" = all ]; then
  "$python" "$here/results.py" --out "$here/RESULTS.md" --curve "$work/pilot_curve.csv" \
    --stores "$work/data"
fi
