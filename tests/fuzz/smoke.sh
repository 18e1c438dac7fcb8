#!/usr/bin/env bash
# Bounded fuzzing smoke run for CI: builds every target of tests/fuzz once (release, debug
# assertions and overflow checks on, AddressSanitizer), then runs each for SECONDS_PER_TARGET
# seconds on a fresh copy of its seed corpus (plus its regression inputs) with a 2 MiB main-thread
# stack, the size of the server's shard threads. Exits non-zero on any crash, leak, timeout or
# out-of-memory; the committed corpus is never modified.
#
#   tests/fuzz/smoke.sh [SECONDS_PER_TARGET]      (default 30)
#
# Environment: FUZZ_TARGETS="ws_frames conn" to run a subset; FUZZ_KEEP_WORK=1 to keep the
# temporary corpora and logs.
set -euo pipefail

SECS=${1:-30}
CARGO_FUZZ_VERSION=0.13.2
STACK_KB=2048
TARGETS=${FUZZ_TARGETS:-"http_request ws_frames ws_deflate json_command http_api_body conn"}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
t0=$(date +%s)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi

if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --quiet
fi

max_len() {
    case "$1" in
        http_request) echo 20000 ;;
        *) echo 70000 ;;
    esac
}

dict() {
    case "$1" in
        http_request | http_api_body) echo "$here/dict/http.dict" ;;
        json_command) echo "$here/dict/json.dict" ;;
        ws_frames | ws_deflate | conn) echo "$here/dict/ws.dict" ;;
    esac
}

tb=$(date +%s)
cargo +nightly fuzz build --fuzz-dir tests/fuzz -O -a
bin="$here/target/x86_64-unknown-linux-gnu/release"
echo "fuzz: build took $(($(date +%s) - tb)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/framecast-fuzz.XXXXXX")
cleanup() { [ -n "${FUZZ_KEEP_WORK:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$here/artifacts"

failed=0
for t in $TARGETS; do
    mkdir -p "$work/$t/corpus" "$work/$t/regressions" "$here/artifacts/$t"
    cp -r "$here/corpus/$t/." "$work/$t/corpus/"
    if [ -d "$here/regressions/$t" ]; then
        cp -r "$here/regressions/$t/." "$work/$t/regressions/"
    fi
    log="$work/$t/log"
    ts=$(date +%s)
    # The subshell sets the stack limit, then becomes the fuzzer (exec): libFuzzer runs inputs
    # on the main thread, whose stack is this rlimit.
    (
        ulimit -s "$STACK_KB"
        exec "$bin/$t" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
            -timeout=10 -dict="$(dict "$t")" -print_final_stats=1 \
            -artifact_prefix="$here/artifacts/$t/" "$work/$t/corpus" "$work/$t/regressions"
    ) >"$log" 2>&1 &
    pid=$!
    # Check that the limit really applies to the fuzzer process.
    sleep 0.3
    stack=$(awk '/^Max stack size/ {print $4}' "/proc/$pid/limits" 2>/dev/null || true)
    set +e
    wait "$pid"
    rc=$?
    set -e
    secs=$(($(date +%s) - ts))
    if [ -n "$stack" ] && [ "$stack" != $((STACK_KB * 1024)) ]; then
        echo "fuzz $t: the fuzzer ran with a $stack-byte stack, not $((STACK_KB * 1024))"
        failed=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # After a crash there are no final stats: the last status line counts the runs.
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz $t: ${execs:-?} execs in $secs s, no crash"
    else
        failed=1
        cause=$(grep -m1 -E "panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY:" "$log" || true)
        detail=$(grep -m1 -A1 "panicked at" "$log" | tail -1 || true)
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "fuzz $t: CRASH after ${execs:-?} execs in $secs s: ${cause}${detail:+ ($detail)}"
        echo "fuzz $t: artifact ${artifact:-none}; reproduce: (ulimit -s $STACK_KB; $bin/$t ${artifact:-<input>})"
        tail -n 60 "$log" | sed "s/^/  $t| /"
    fi
done

echo "fuzz: total $(($(date +%s) - t0)) s"
exit "$failed"
