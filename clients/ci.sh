#!/usr/bin/env bash
# Builds and tests every framecast client against the real server binary, installing what it needs
# from the lockfiles on a fresh machine: npm ci (package-lock.json), a venv with the hashed
# requirements, Debian's chromium when /usr/bin/chromium is missing. Exits non-zero on any failure.
#
#   clients/ci.sh                      # after `cargo build` / `cargo test` (uses ../target/debug/framecast)
#   FRAMECAST_BIN=/path/framecast clients/ci.sh
set -euo pipefail
cd "$(dirname "$0")"
started=$(date +%s)

bin="${FRAMECAST_BIN:-../target/debug/framecast}"
if [ ! -x "$bin" ]; then
  echo "clients/ci.sh: no framecast binary at $bin (run cargo build, or set FRAMECAST_BIN)" >&2
  exit 1
fi
FRAMECAST_BIN="$(realpath "$bin")"
export FRAMECAST_BIN
echo "clients/ci.sh: testing against $FRAMECAST_BIN"

if [ ! -x /usr/bin/chromium ]; then
  echo "clients/ci.sh: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! python3 -c "import ensurepip" 2>/dev/null; then
  echo "clients/ci.sh: installing Debian's python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

echo "== npm ci, build (tsc strict, esbuild)"
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent

echo "== JS: @framecast/client, @framecast/react, example in Chromium (node --test)"
js_status=0
for ws in @framecast/client @framecast/react @framecast/example; do
  echo "-- $ws"
  npm test --silent -w "$ws" || js_status=1
done

echo "== Python: venv, ruff, mypy, pytest"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check --require-hashes -r python/requirements-dev.txt
py_status=0
# (set -e does not apply inside a `||` list: chain with && so every step counts)
(
  cd python &&
    ../.venv/bin/ruff check . &&
    ../.venv/bin/ruff format --check . &&
    ../.venv/bin/mypy &&
    ../.venv/bin/pytest -q -p no:cacheprovider
) || py_status=1

echo "clients/ci.sh: JS $([ $js_status = 0 ] && echo ok || echo FAILED), Python $([ $py_status = 0 ] && echo ok || echo FAILED), $(( $(date +%s) - started )) s"
[ $js_status = 0 ] && [ $py_status = 0 ]
