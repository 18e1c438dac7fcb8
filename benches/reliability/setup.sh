#!/usr/bin/env bash
# Creates benches/reliability/.venv (Python 3.11) with the pinned, hashed requirements.
# Idempotent: re-running only re-checks the install.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
      py="$cand"; break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "setup.sh: need Python 3.11 (set PYTHON=/path/to/python3.11); on Debian: apt-get install python3.11 python3.11-venv" >&2
  exit 1
fi
if [ ! -x "$here/.venv/bin/python" ]; then
  "$py" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$here/requirements.txt"
"$here/.venv/bin/python" -c 'import websockets, sys; print("ok: python", sys.version.split()[0], "websockets", websockets.__version__)'
