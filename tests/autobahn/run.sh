#!/usr/bin/env bash
# Autobahn|TestSuite (fuzzingclient) against framecast's echo endpoint.
#
#   tests/autobahn/run.sh [FRAMECAST_BINARY]      (default: target/release/framecast)
#
# Environment (all optional):
#   AUTOBAHN_IO             backends to test, space/comma separated: uring, epoll, auto
#                           (default: "uring epoll")
#   AUTOBAHN_CASES          case patterns (default: "1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.*";
#                           "12.* 13.*" are permessage-deflate, about 6 minutes per backend)
#   AUTOBAHN_EXCLUDE_CASES  case patterns to leave out (default: none)
#   AUTOBAHN_REPORT_DIR     where the HTML/JSON reports go, one sub-folder per backend
#                           (default: target/autobahn-report)
#   AUTOBAHN_TIMEOUT        seconds one wstest run may take (default: 900)
#   AUTOBAHN_PYTHON27       a CPython 2.7 interpreter to use instead of searching for one
#   XDG_CACHE_HOME          the virtualenv is cached in $XDG_CACHE_HOME/framecast/autobahn-py27
#
# Exit status: 0 when every case is OK/INFORMATIONAL with an OK/INFORMATIONAL close behaviour
# on every backend (or when no Python 2.7 exists: one "autobahn: skipped: ..." line), 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
started=$SECONDS

binary=${1:-$root/target/release/framecast}
case $binary in /*) ;; *) binary=$PWD/$binary ;; esac
if [[ ! -x $binary ]]; then
    echo "autobahn: error: no framecast binary at $binary (build it with: cargo build --release --bin framecast)" >&2
    exit 1
fi

# --- 1. CPython 2.7 ---------------------------------------------------------------------------
is_py27() { [[ -n $1 && -x $1 ]] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' >/dev/null 2>&1; }
py27=
for candidate in "${AUTOBAHN_PYTHON27:-}" "$HOME/.pyenv/versions/2.7.18/bin/python" "$(command -v python2.7 2>/dev/null || true)"; do
    if is_py27 "$candidate"; then py27=$candidate; break; fi
done
if [[ -z $py27 ]]; then
    echo "autobahn: skipped: no Python 2.7 (looked for \$AUTOBAHN_PYTHON27, ~/.pyenv/versions/2.7.18/bin/python and python2.7 on PATH)"
    exit 0
fi
command -v python3 >/dev/null || { echo "autobahn: error: python3 is needed for check.py" >&2; exit 1; }

# --- 2. Virtualenv with the pinned, hashed requirements ---------------------------------------
# virtualenv 16.7.12 is the last single-file virtualenv that runs on 2.7; it bundles pip 20.3.4,
# setuptools 44.1.1 and wheel 0.36.2 and installs them without a download (--no-download).
virtualenv_pin='virtualenv==16.7.12 --hash=sha256:9180ce4102c388073bac71ecd041f7f31f9ef8c528edb205d75ae6144d08106e'
requirements=$here/requirements-py27.txt
cache=${XDG_CACHE_HOME:-$HOME/.cache}/framecast
venv=$cache/autobahn-py27
want=$({ cat "$requirements"; echo "$virtualenv_pin"; echo "$py27"; "$py27" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
export PYTHONWARNINGS=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

venv_ok() { [[ -f $venv/.framecast-stamp && $(cat "$venv/.framecast-stamp") == "$want" && -x $venv/bin/wstest ]]; }

mkdir -p "$cache"
exec 9>"$cache/autobahn-py27.lock"
flock 9 # one builder at a time; a second run waits and then reuses the result
if venv_ok; then
    echo "autobahn: virtualenv $venv is up to date"
else
    t0=$SECONDS
    echo "autobahn: building virtualenv $venv (requirements hash ${want:0:12})"
    rm -rf "$venv"
    boot=$(mktemp -d)
    echo "$virtualenv_pin" >"$boot/virtualenv.txt"
    if "$py27" -m pip --version >/dev/null 2>&1; then
        "$py27" -m pip download -q --no-deps --require-hashes -d "$boot" -r "$boot/virtualenv.txt"
    else
        python3 -m pip download -q --no-deps --require-hashes --only-binary=:all: \
            --python-version 2.7 -d "$boot" -r "$boot/virtualenv.txt"
    fi
    python3 -m zipfile -e "$boot"/virtualenv-16.7.12-py2.py3-none-any.whl "$boot/virtualenv"
    "$py27" "$boot/virtualenv/virtualenv.py" --quiet --no-download "$venv"
    rm -rf "$boot"
    # --no-build-isolation: the four sdists (autobahn, txaio, PyHamcrest, wsaccel) build with the
    # virtualenv's own pinned setuptools/wheel instead of unpinned ones fetched into a build env.
    "$venv/bin/python" -m pip install -q --no-deps --require-hashes --no-build-isolation \
        -r "$requirements"
    "$venv/bin/python" -m pip check >/dev/null
    "$venv/bin/python" -c 'import autobahntestsuite, autobahn, twisted, wsaccel.utf8validator, wsaccel.xormask'
    echo "$want" >"$venv/.framecast-stamp"
    echo "autobahn: virtualenv ready in $((SECONDS - t0)) s"
fi
flock -u 9
exec 9>&-

# --- 3-6. One fuzzingclient run per backend ---------------------------------------------------
io_list=${AUTOBAHN_IO:-uring epoll}
io_list=${io_list//,/ }
cases=${AUTOBAHN_CASES:-1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.*}
exclude=${AUTOBAHN_EXCLUDE_CASES:-}
report_root=${AUTOBAHN_REPORT_DIR:-$root/target/autobahn-report}
case $report_root in /*) ;; *) report_root=$PWD/$report_root ;; esac # wstest runs elsewhere
wstest_timeout=${AUTOBAHN_TIMEOUT:-900}

work=$(mktemp -d)
server_pid=
stop_server() {
    [[ -n $server_pid ]] || return 0
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

json_list() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
healthy() {
    python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:%s/healthz" % sys.argv[1], timeout=1) as r:
        sys.exit(r.status != 200)
except Exception:
    sys.exit(1)
EOF
}

status=0
for io in $io_list; do
    t0=$SECONDS
    port=$(free_port)
    log=$work/framecast-$io.log
    # --ping-interval 10m: a server ping in the middle of a case would be an unexpected frame to
    # the fuzzer; no case lasts that long. --drain-timeout 1s: a quick stop at the end.
    "$binary" --listen "127.0.0.1:$port" --io "$io" --echo-path /echo --log-level warn \
        --max-message-bytes 16MiB --max-queued-bytes 64MiB --ping-interval 10m \
        --drain-timeout 1s >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        healthy "$port" && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! healthy "$port" && [[ $io == uring ]] && grep -q "io_uring is not available" "$log"; then
        # As the cargo suites do where io_uring is blocked (Docker's default seccomp profile):
        # one line saying what did not run and why; the epoll run still counts.
        echo "autobahn (io=uring): skipped: $(grep -o 'io_uring is not available[^;]*' "$log" | head -1)"
        stop_server
        continue
    fi
    if ! healthy "$port"; then
        echo "autobahn (io=$io): error: framecast did not answer /healthz on 127.0.0.1:$port; its log:"
        sed 's/^/  | /' "$log"
        stop_server
        status=1
        continue
    fi

    outdir=$report_root/io-$io
    rm -rf "$outdir"
    mkdir -p "$outdir"
    # shellcheck disable=SC2086 # the case lists are word lists on purpose
    cat >"$work/spec-$io.json" <<EOF
{
  "outdir": "$outdir",
  "servers": [{"agent": "framecast-$io", "url": "ws://127.0.0.1:$port/echo"}],
  "cases": $(set -f; json_list $cases),
  "exclude-cases": $(set -f; json_list $exclude),
  "exclude-agent-cases": {}
}
EOF
    echo "autobahn (io=$io): running wstest -m fuzzingclient (cases: $cases) against 127.0.0.1:$port"
    wstest_rc=0
    (cd "$work" && timeout "$wstest_timeout" "$venv/bin/wstest" -m fuzzingclient -s "$work/spec-$io.json") \
        >"$work/wstest-$io.log" 2>&1 || wstest_rc=$?
    cp "$work/wstest-$io.log" "$work/spec-$io.json" "$outdir/" 2>/dev/null || true

    died=0
    kill -0 "$server_pid" 2>/dev/null || died=1
    if [[ $died == 1 ]]; then
        wait "$server_pid" && rc=0 || rc=$?
        server_pid=
        echo "autobahn (io=$io): error: framecast died during the run (exit status $rc); its log:"
        sed 's/^/  | /' "$log"
        status=1
    else
        stop_server
    fi
    cp "$log" "$outdir/framecast.log"
    if [[ -s $log ]]; then
        echo "autobahn (io=$io): framecast logged $(wc -l <"$log") line(s) at warn or above (in $outdir/framecast.log)"
    fi
    if [[ $wstest_rc != 0 || ! -f $outdir/index.json ]]; then
        echo "autobahn (io=$io): error: wstest exited with status $wstest_rc$([[ $wstest_rc == 124 ]] && echo " (timed out after ${wstest_timeout}s)"); last lines:"
        tail -n 20 "$work/wstest-$io.log" | sed 's/^/  | /'
        status=1
        continue
    fi
    python3 "$here/check.py" "$outdir/index.json" "$io" "$work/wstest-$io.log" || status=1
    echo "autobahn (io=$io): $((SECONDS - t0)) s; report: $outdir/index.html"
done
echo "autobahn: total $((SECONDS - started)) s"
exit $status
