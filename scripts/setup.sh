#!/usr/bin/env bash
# Create .venv and install orca-automl with its pinned torch/torchvision and dev tools.
# Idempotent: a second run only checks the install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]" >.venv/pip-install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/pip-install.log >&2
  echo "setup: pip install failed (full log: .venv/pip-install.log)" >&2
  exit 1
fi
.venv/bin/python -c "import orca_automl, torch, torchvision, ray, optuna, ot; print('orca-automl', orca_automl.__version__, '| torch', torch.__version__)"
