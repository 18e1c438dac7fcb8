#!/usr/bin/env bash
# Creates servers/py-websockets/.venv and installs websockets from PyPI with the pinned hashes of
# requirements.txt (idempotent).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c 'import websockets, sys; sys.exit(0 if websockets.__version__ == "17.4" else 1)' 2>/dev/null; then
  .venv/bin/pip install --disable-pip-version-check -q --require-hashes -r requirements.txt
fi
.venv/bin/python -c 'import sys, websockets; print("py-websockets: python", sys.version.split()[0], "websockets", websockets.__version__)'
