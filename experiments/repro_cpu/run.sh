#!/usr/bin/env bash
# Reproduce the paper's four claims at CPU scale and write experiments/repro_cpu/RESULTS.md.
#   bash infra/dev.sh repro                 # sets up .venv, then runs this script
#   bash experiments/repro_cpu/run.sh [--fresh] [--set key=value ...]
# Runs the four specs beside this file on one Ray cluster, two at a time (each model trains on
# one Ray Train worker with 1 CPU, so two fit on a 2-core machine), all logging to one MLflow
# store; then `incdyn report --claims` rebuilds RESULTS.md from MLflow alone.
# Working files (stores, checkpoints, mlflow.db, logs) go to $REPRO_DIR (default
# outputs/repro_cpu); a rerun resumes finished trainings from there, --fresh starts over.
# The report goes to $REPRO_RESULTS (default experiments/repro_cpu/RESULTS.md).
# $RAY_ADDRESS: use that cluster; otherwise a head is started on 127.0.0.1 and stopped at exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/experiments/repro_cpu"
work="${REPRO_DIR:-$root/outputs/repro_cpu}"
results="${REPRO_RESULTS:-$here/RESULTS.md}"
case "$results" in /*) ;; *) results="$PWD/$results" ;; esac  # relative to where it was called
if [ "${1:-}" = "--fresh" ]; then shift; rm -rf "$work"; fi
mkdir -p "$work"
work="$(cd "$work" && pwd)"  # absolute: the MLflow URI below must survive the cd
cd "$work"
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db"
export RAY_USAGE_STATS_ENABLED=0
# create the MLflow tables once, before two processes write to the store at the same time
python -c "from mlflow.tracking import MlflowClient; MlflowClient().search_experiments()" \
  >/dev/null 2>&1
started=""
if [ -z "${RAY_ADDRESS:-}" ]; then
  # Ray 2.60 authenticates clients by token: give the head and every driver the same fresh one
  export RAY_AUTH_MODE=token
  RAY_AUTH_TOKEN="$(python -c 'import secrets; print(secrets.token_hex(32))')"
  export RAY_AUTH_TOKEN
  port="${REPRO_RAY_PORT:-6390}"
  ray start --head --num-cpus=2 --port="$port" --dashboard-host=127.0.0.1 \
    --dashboard-port="${REPRO_DASHBOARD_PORT:-8266}" --disable-usage-stats >ray_start.log 2>&1
  export RAY_ADDRESS="127.0.0.1:$port"
  started=1
fi
cleanup() { if [ -n "$started" ]; then ray stop --force >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

start=$(date +%s)
echo "repro: logs in $work/lane_a.log and $work/lane_b.log"
# two lanes of about equal work (each spec's methods and seeds run one after another); lane b,
# the longer, took 58.4 min with seeds 0-2 and 58.2 with seeds 3-5, lane a about 3 min less
( incdyn run "$here/pixel_ns.yaml" "$@" && incdyn run "$here/block_sw.yaml" "$@" \
  && incdyn run "$here/ensemble_sw.yaml" "$@" ) >lane_a.log 2>&1 &
lane_a=$!
( incdyn run "$here/pixel_ns_baselines.yaml" "$@" && incdyn run "$here/block_ns.yaml" "$@" ) \
  >lane_b.log 2>&1 &
lane_b=$!
status=0
wait "$lane_a" || { status=1; echo "repro: lane a failed (see $work/lane_a.log)" >&2; }
wait "$lane_b" || { status=1; echo "repro: lane b failed (see $work/lane_b.log)" >&2; }
echo "repro: runs took $(( ($(date +%s) - start) / 60 )) min"
[ "$status" = 0 ] || exit "$status"
cd "$root"
incdyn report --claims "$here/claims.yaml" --out "$results"
