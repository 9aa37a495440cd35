#!/usr/bin/env bash
# Create .venv and install orca-automl with its pinned torch/torchvision and dev tools.
# Idempotent: a second run only checks the install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# torch's build alone takes 5.5 GB in the venv: say so up front instead of failing midway.
if [ ! -x .venv/bin/python ]; then
  free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
  if [ "${free_kb:-0}" -lt $((7 * 1024 * 1024)) ]; then
    echo "setup: the install needs about 7 GB free here; $(df -Ph . | awk 'NR==2 {print $4}') is free in $(pwd) (free some space, then rerun)" >&2
    exit 2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# uv installs the same packages as pip several times faster (torch's 5.5 GB unpacked in
# parallel); it is told pip's own configuration (indexes, find-links, constraints, CA file),
# so both resolve from the same places, and compiles the bytecode as pip does (where
# PYTHONDONTWRITEBYTECODE is set, nothing else would: every process would parse torch
# again). Without uv (or when it fails: .venv/uv-install.log says why), pip does the install.
if .venv/bin/python -m pip install -q uv >.venv/uv-install.log 2>&1 \
   && uv_args=$(.venv/bin/python scripts/uv_args.py) \
   && eval "$uv_args" \
   && .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python "${UV_ARGS[@]}" \
        -c constraints.txt -e ".[dev]" >>.venv/uv-install.log 2>&1; then
  :
elif ! .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]" >.venv/pip-install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/pip-install.log >&2
  echo "setup: pip install failed (full log: .venv/pip-install.log)" >&2
  exit 1
fi
.venv/bin/python -c "import orca_automl, torch, torchvision, ray, optuna, ot; print('orca-automl', orca_automl.__version__, '| torch', torch.__version__)"
