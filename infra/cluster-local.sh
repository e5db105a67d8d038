#!/usr/bin/env bash
# `incdyn run SPEC` as a Ray job on a throwaway Ray head on this machine (loopback only):
#   bash infra/cluster-local.sh [SPEC] [--set key=value ...]
# Everything the job writes (the data store, Ray Train's checkpoints, mlflow.db, the head's log)
# lands in $INCDYN_HOME (default: outputs/cluster-local), made absolute: the job itself runs in
# a temporary copy of this folder that Ray deletes. $RAY_PORT, $DASHBOARD_PORT, $AGENT_PORT and
# $CLIENT_PORT move the head's fixed ports (beside another Ray head, all four must be free).
# docs/sweeps-and-cluster.md shows the lines below; a test runs this script.
set -euo pipefail
# --- cluster-local: begin ---
spec="${1:-experiments/quickstart.yaml}"; shift $(( $# > 0 ))
export INCDYN_HOME="$(mkdir -p "${INCDYN_HOME:-outputs/cluster-local}" && cd "${INCDYN_HOME:-outputs/cluster-local}" && pwd)"
export RAY_AUTH_MODE=token  # Ray 2.60: the `ray` CLI sends the token only in this mode
export RAY_AUTH_TOKEN="$(python -c 'import secrets; print(secrets.token_hex(32))')"
export RAY_ADDRESS="http://127.0.0.1:${DASHBOARD_PORT:-8265}"
ray start --head --block --num-cpus=2 --port="${RAY_PORT:-6379}" --dashboard-host=127.0.0.1 \
    --dashboard-port="${DASHBOARD_PORT:-8265}" --dashboard-agent-listen-port="${AGENT_PORT:-52365}" \
    --ray-client-server-port="${CLIENT_PORT:-10001}" --disable-usage-stats >"$INCDYN_HOME/ray-head.log" 2>&1 &
head=$!
# on exit, stop the head and everything it started; the exit status stays the script's
trap 'rc=$?; kill "$head" 2>/dev/null || true; wait "$head" 2>/dev/null || true; exit "$rc"' EXIT
trap 'exit 143' INT TERM
job="incdyn-$(date +%Y%m%d-%H%M%S)"
for try in $(seq 60); do  # the head answers before its job agent is up: retry the submission
  ray job submit --no-wait --submission-id "$job" --working-dir . --entrypoint-num-cpus 0.1 \
      --runtime-env-json "{\"env_vars\": {\"INCDYN_HOME\": \"$INCDYN_HOME\"}}" \
      -- incdyn run "$spec" "$@" >"$INCDYN_HOME/submit.log" 2>&1 && break
  kill -0 "$head" 2>/dev/null || { tail -n 20 "$INCDYN_HOME/ray-head.log"; exit 1; }  # head died
  sleep 2
done
ray job logs -f "$job"
status="$(ray job status "$job" 2>&1)" && echo "$status"
[[ "$status" == *succeeded* ]]  # the script's exit status: the job's
# --- cluster-local: end ---
