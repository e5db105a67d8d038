#!/usr/bin/env bash
# The paper's claims at CPU scale under experiments/repro_cpu/PROTOCOL.md: pilots, the claims'
# runs, the complete-data oracle, then RESULTS.md and the CSVs of every run it uses.
#   bash infra/dev.sh repro --fresh         # sets up .venv, then runs this script
#   bash experiments/repro_cpu/run.sh [--fresh] [--smoke] [--set key=value ...]
# Two lanes run at once on one Ray cluster (each model trains on one Ray Train worker with
# 1 CPU, so two fit on a 2-core machine), all logging to one MLflow store. In each lane a spec's
# pilots run first (profile `pilot`: one seed of its own, the learning-rate candidates below; the
# block specs' pilots also run both readings of the block partition's query); `incdyn report
# --pick` applies the protocol's rule (lowest mean val_heldout_mse) and the spec's claims' runs
# use its choice. Then `incdyn report --claims` writes RESULTS.md, RESULTS_runs.csv and
# RESULTS_pilot_runs.csv from MLflow.
# --smoke: a few training steps on tiny data sets and one seed, to see the pipeline run end to
# end (its report goes to $REPRO_DIR/RESULTS.md unless $REPRO_RESULTS says otherwise).
# Working files (stores, checkpoints, mlflow.db, logs) go to $REPRO_DIR (default
# outputs/repro_cpu); a rerun resumes finished trainings from there, --fresh starts over.
# $RAY_ADDRESS: use that cluster; otherwise a head is started on 127.0.0.1 and stopped at exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/experiments/repro_cpu"
work="${REPRO_DIR:-$root/outputs/repro_cpu}"
fresh="" smoke=""
while [ $# -gt 0 ]; do
  case "$1" in
    --fresh) fresh=1; shift ;;
    --smoke) smoke=1; shift ;;
    *) break ;;
  esac
done
lrs=(0.01 0.04)  # the learning-rate candidates PROTOCOL.md declares
small=()
if [ -n "$smoke" ]; then
  small=(--set training.steps=2 --set training.warmup_steps=0 --set training.log_every=1
    --set training.checkpoint_every=2 --set training.val_samples=4 --set data.n_train=8
    --set data.n_val=4 --set data.n_test=4 --set data.chunk=4 --set evaluation.batch_size=4
    --set data.params.frames=4)
  claim_seeds=(--set "seeds=[0]")
else
  claim_seeds=()
fi
[ -z "$fresh" ] || rm -rf "$work"
mkdir -p "$work"
work="$(cd "$work" && pwd)"  # absolute: the MLflow URI below must survive the cd
default_results="$here/RESULTS.md"
[ -z "$smoke" ] || default_results="$work/RESULTS.md"
results="${REPRO_RESULTS:-$default_results}"
case "$results" in /*) ;; *) results="$PWD/$results" ;; esac  # relative to where it was called
cd "$work"
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db"
export RAY_USAGE_STATS_ENABLED=0
# create the MLflow tables once, before two processes write to the store at the same time
python -c "from mlflow.tracking import MlflowClient; MlflowClient().search_experiments()" \
  >/dev/null 2>&1
raytmp=""
cleanup() {
  [ -n "$raytmp" ] || return 0
  local pids
  pids="$(pgrep -f -- "$raytmp" || true)"  # this head's GCS, raylet, dashboard, monitors
  [ -z "$pids" ] || kill $pids 2>/dev/null || true  # the raylet takes its workers with it
  sleep 2
  pids="$(pgrep -f -- "$raytmp" || true)"
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  rm -rf "$raytmp"
}
trap cleanup EXIT
if [ -z "${RAY_ADDRESS:-}" ]; then
  # Ray 2.60 authenticates clients by token: give the head and every driver the same fresh one
  export RAY_AUTH_MODE=token
  RAY_AUTH_TOKEN="$(python -c 'import secrets; print(secrets.token_hex(32))')"
  export RAY_AUTH_TOKEN
  port="${REPRO_RAY_PORT:-6390}"
  # a temp dir of its own (short: Ray's socket paths must stay under 108 characters) names
  # this head's processes, so that only they are stopped at exit (`ray stop` would stop every
  # Ray instance on the machine)
  raytmp="$(mktemp -d /tmp/incdyn-repro-XXXXXX)"
  ray start --head --num-cpus=2 --port="$port" --dashboard-host=127.0.0.1 --temp-dir="$raytmp" \
    --dashboard-port="${REPRO_DASHBOARD_PORT:-8266}" --disable-usage-stats >ray_start.log 2>&1
  export RAY_ADDRESS="127.0.0.1:$port"
fi

# pilots SPEC NAME: one pilot run per learning-rate candidate, then the rule's choice, printed
# as "METHOD LR" (the method matters where the pilot runs two: the block partition's query)
pilots() {
  local spec="$1" name="$2" lr
  shift 2
  for lr in "${lrs[@]}"; do
    incdyn run "$here/$spec.yaml" --set profile=pilot --set "training.lr=$lr" \
      ${small[@]+"${small[@]}"} "$@" >&2
  done
  incdyn report repro-cpu-pilots --pick training.lr --spec "$name"
}
claim() {  # claim SPEC [--set ...]: the claims' runs of one spec
  local spec="$1"; shift
  incdyn run "$here/$spec.yaml" ${small[@]+"${small[@]}"} ${claim_seeds[@]+"${claim_seeds[@]}"} "$@"
}

lane_a() {
  local method lr
  read -r method lr < <(pilots pixel_ns repro-pixel-ns "$@") && [ -n "$lr" ] || return 1
  echo "lane a: Navier–Stokes pixel 20 %: lr $lr (pilot method $method)"
  claim pixel_ns --set "training.lr=$lr" "$@"
  claim pixel_ns_baselines --set "training.lr=$lr" "$@"
  claim oracle_ns --set "training.lr=$lr" "$@"
  read -r method lr < <(pilots ensemble_sw repro-ensemble-sw "$@") && [ -n "$lr" ] || return 1
  echo "lane a: Shallow Water pixel 80 %: lr $lr (pilot method $method)"
  claim ensemble_sw --set "training.lr=$lr" "$@"
}
lane_b() {
  local spec name method lr query_all
  for spec in block_ns block_sw; do
    name="repro-${spec//_/-}"
    read -r method lr < <(pilots "$spec" "$name" "$@") && [ -n "$lr" ] || return 1
    query_all=false
    [ "$method" != ours_block_all ] || query_all=true
    echo "lane b: $spec: lr $lr, query_all $query_all (pilot method $method)"
    claim "$spec" --set "training.lr=$lr" --set "methods.ours_block.partition.query_all=$query_all" "$@"
  done
}

start=$(date +%s)
echo "repro: logs in $work/lane_a.log and $work/lane_b.log"
# two lanes of about equal work (PROTOCOL.md: the time estimate)
lane_a "$@" >lane_a.log 2>&1 &
pid_a=$!
lane_b "$@" >lane_b.log 2>&1 &
pid_b=$!
status=0
wait "$pid_a" || { status=1; echo "repro: lane a failed (see $work/lane_a.log)" >&2; }
wait "$pid_b" || { status=1; echo "repro: lane b failed (see $work/lane_b.log)" >&2; }
grep -h "^lane" lane_a.log lane_b.log || true
echo "repro: runs took $(( ($(date +%s) - start) / 60 )) min"
[ "$status" = 0 ] || exit "$status"
cd "$root"
incdyn report --claims "$here/claims.yaml" --out "$results"
