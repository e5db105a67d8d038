#!/usr/bin/env bash
# Set up a virtual environment with incdyn installed, then run the quick start or the tests.
#   bash infra/dev.sh quickstart [--set key=value ...]   # incdyn run experiments/quickstart.yaml
#   bash infra/dev.sh test [pytest args ...]             # python -m pytest (fast suite)
#   bash infra/dev.sh repro [--fresh] [--set ...]        # the paper's claims under experiments/repro_cpu/PROTOCOL.md (62 min on 2 cores)
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

# The browser test (tests/test_ui_browser.py) drives the Debian `chromium` package through
# Playwright; no browser is downloaded. Install it with apt-get when missing (CI runs as root);
# if that fails the test fails and says so.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  for attempt in 1 2 3; do
    if $sudo apt-get update -q >/dev/null && \
       DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null; then
      [ -x /usr/bin/chromium ] && return 0
    fi
    echo "dev.sh: installing chromium with apt-get failed (attempt $attempt)" >&2
    sleep $((attempt * 5))
  done
  echo "dev.sh: WARNING: /usr/bin/chromium is missing: tests/test_ui_browser.py will fail" >&2
}

case "${1:-}" in
  quickstart) shift; exec "$venv/bin/incdyn" run experiments/quickstart.yaml "$@" ;;
  test) shift; ensure_chromium; exec "$venv/bin/python" -m pytest "$@" ;;
  repro) shift; PATH="$(cd "$venv" && pwd)/bin:$PATH" exec bash experiments/repro_cpu/run.sh "$@" ;;
  *) echo "usage: bash infra/dev.sh {quickstart|test|repro} [args]" >&2; exit 2 ;;
esac
