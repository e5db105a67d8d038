#!/usr/bin/env bash
# Set up a virtual environment with incdyn installed, then run the quick start or the tests.
#   bash infra/dev.sh quickstart [--set key=value ...]   # incdyn run experiments/quickstart.yaml
#   bash infra/dev.sh test [pytest args ...]             # python -m pytest (fast suite)
#   bash infra/dev.sh repro [--fresh] [--set ...]        # the paper's claims at CPU scale (49-56 min measured)
# torch is pinned to 2.13.0: its CPU wheel lies on the dev/CI machines' disk (any other
# version is a multi-GB CUDA download). INCDYN_VENV chooses the environment (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${INCDYN_VENV:-.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
"$venv/bin/python" -m pip install -q "torch==2.13.0" -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
"$venv/bin/python" -c "import incdyn.platform.cli" # fail here if the install did not work
export RAY_USAGE_STATS_ENABLED=0
case "${1:-}" in
  quickstart) shift; exec "$venv/bin/incdyn" run experiments/quickstart.yaml "$@" ;;
  test) shift; exec "$venv/bin/python" -m pytest "$@" ;;
  repro) shift; PATH="$(cd "$venv" && pwd)/bin:$PATH" exec bash experiments/repro_cpu/run.sh "$@" ;;
  *) echo "usage: bash infra/dev.sh {quickstart|test|repro} [args]" >&2; exit 2 ;;
esac
