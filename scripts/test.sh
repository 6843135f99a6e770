#!/usr/bin/env bash
# Installs what the test suite needs and runs it (offline). Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements-dev.txt
python -m pip install -q --no-deps -r requirements-nodeps.txt
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
python -m pytest "$@"
