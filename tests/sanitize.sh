#!/usr/bin/env bash
# Memory checks of the io_uring ownership code: connections closed in the middle of large sends,
# then a shutdown (tests/close_mid_send.rs, both backends), and drivers dropped with sends and
# receives in flight (the driver's unit tests, src/driver/uring/tests.rs).
#
# 1. AddressSanitizer and LeakSanitizer (nightly rustc, -Zsanitizer=address, no build-std):
#    the driver's unit tests and tests/close_mid_send.rs on both backends. They check every
#    access framecast's own code makes (the raw buffer-ring memory, the send boxes) and that
#    nothing is leaked (the driver leaks on purpose only when the kernel did not finish).
# 2. valgrind memcheck: the driver's io_uring unit tests (single-threaded) and
#    tests/close_mid_send.rs on the epoll backend. Not the io_uring server: valgrind runs one
#    thread at a time and treats io_uring_enter as a call that never blocks, so a shard waiting
#    in it keeps the others (distributor, tokio clients) from running; such a test does not
#    finish under valgrind 3.19.
#
# Neither tool sees the kernel's own reads and writes through io_uring; that the kernel is done
# before memory is freed is what the drain in src/driver/uring/shutdown.rs and its tests check.
#
# Each step is bounded (SANITIZE_TIMEOUT seconds each, default 900) and prints one
# "skipped: why" line when its tool is missing. Exit status non-zero if a check failed.
set -uo pipefail
cd "$(dirname "$0")/.."

limit=${SANITIZE_TIMEOUT:-900}
target=${CARGO_TARGET_DIR:-target}
status=0

# Paths of the test executables cargo builds for `$@`.
executables() {
    cargo test --no-run "$@" 2>&1 | sed -n 's/^ *Executable .* (\(.*\))$/\1/p'
}

echo "== AddressSanitizer"
if ! command -v rustup >/dev/null || ! rustup toolchain list | grep -q '^nightly'; then
    echo "skipped: no nightly toolchain (-Zsanitizer=address needs one: rustup toolchain install nightly)"
else
    # Its own target directory: instrumented artifacts must not mix with normal ones.
    if ! RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS="detect_leaks=1" \
        CARGO_TARGET_DIR="$target/asan" \
        timeout "$limit" cargo +nightly test --target x86_64-unknown-linux-gnu \
        --lib --test close_mid_send -- driver:: burst; then
        echo "AddressSanitizer: FAILED (or timed out after ${limit}s)"
        status=1
    fi
fi

echo "== valgrind memcheck"
if ! command -v valgrind >/dev/null; then
    echo "skipped: valgrind is not installed"
else
    export CARGO_TARGET_DIR="$target"
    lib=$(executables --lib | head -n 1)
    suite=$(executables --test close_mid_send | head -n 1)
    run() {
        if ! timeout "$limit" valgrind --error-exitcode=1 --trace-children=no --quiet "$@"; then
            echo "valgrind: $* FAILED (or timed out after ${limit}s)"
            status=1
        fi
    }
    run "$lib" driver::uring --test-threads=1
    run "$suite" burst --skip io_uring --test-threads=1
fi
exit $status
