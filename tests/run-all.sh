#!/usr/bin/env bash
# The README's test command: every suite, installing what it needs on a fresh machine.
#
#   tests/run-all.sh
#
# 0. tests/arch/module_cycles.py     no import cycle between the server's top-level modules
#    nats-server                     installs Debian's nats-server if missing (for tests/cluster.rs)
# 1. cargo test                      Rust unit and integration suites, both backends, and the
#                                    cluster suite against real nats-server processes
# 2. io_uring denied (seccomp)       one suite again with io_uring blocked as Docker blocks it:
#                                    the io_uring variants say they were skipped, epoll runs
# 3. tests/ktls/run.sh               tests/tls.rs again in a qemu VM whose kernel has kernel TLS
#                                    (this host's has not): sessions must go to the kernel
# 4. tests/fuzz/smoke.sh             each fuzz target for FUZZ_SECONDS (default 30) on 2 MiB stacks
# 5. tests/autobahn/run.sh           Autobahn|TestSuite fuzzingclient: 1.*-10.* on both backends,
#                                    12.* and 13.* (permessage-deflate) on the default one
# 6. clients/ci.sh                   the TypeScript, React and Python clients against the server
#
# `cargo test` alone still runs the Rust suites. Steps that need a tool this machine lacks
# (a nightly toolchain, Python 2.7) print one line saying they were skipped and why.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo; echo "=== $* ($((SECONDS - started)) s)"; }

step "module cycles"
python3 tests/arch/module_cycles.py

step "nats-server (for tests/cluster.rs)"
# Debian's package (2.9.10, JetStream built in) is enough for the cluster tests, which use single
# servers. Installing it also enables a systemd service on 127.0.0.1:4222 without JetStream; that
# is harmless: the tests start their own `nats-server -js` on free ports with temporary stores.
# Debian puts it in /usr/sbin, which is not on a normal user's PATH.
[[ :$PATH: == *:/usr/sbin:* ]] || export PATH=$PATH:/usr/sbin
if ! command -v nats-server >/dev/null; then
    as_root=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then as_root=(sudo); fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server \
        || { "${as_root[@]}" apt-get update \
             && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server; }
fi
nats-server --version
# The cluster tests fail, instead of printing a skip line, when nats-server is missing.
export FRAMECAST_REQUIRE_NATS=1

step "cargo test"
cargo test

step "io_uring denied by seccomp: cargo test --test lifecycle --test native_protocol"
mkdir -p target
cc -O2 -o target/deny-io-uring tests/seccomp/deny-io-uring.c
denied_log=target/io-uring-denied.log
target/deny-io-uring cargo test --test lifecycle --test native_protocol 2>&1 | tee "$denied_log"
grep -q "io_uring variants of .* skipped" "$denied_log" || {
    echo "error: with io_uring denied the suite did not report its io_uring variants as skipped" >&2
    exit 1
}

step "kernel TLS in a VM (tests/ktls/run.sh)"
tests/ktls/run.sh

if [[ -x tests/fuzz/smoke.sh ]]; then
    step "fuzz smoke runs"
    tests/fuzz/smoke.sh "${FUZZ_SECONDS:-30}"
fi

step "Autobahn|TestSuite"
cargo build --release --bin framecast
tests/autobahn/run.sh target/release/framecast
# permessage-deflate (12.* and 13.*) lives in the sans-IO core, the same on both backends, and its
# 216 cases take 6-8 minutes (wstest compresses in Python, on one core): once, on the default
# backend, beside the clients step (whose tests are built to pass on a loaded host).
deflate_log=target/autobahn-deflate.log
AUTOBAHN_IO=auto AUTOBAHN_CASES="12.* 13.*" AUTOBAHN_REPORT_DIR=target/autobahn-report-deflate \
    tests/autobahn/run.sh target/release/framecast >"$deflate_log" 2>&1 &
deflate_pid=$!

if [[ -x clients/ci.sh ]]; then
    step "clients"
    FRAMECAST_BIN=$PWD/target/debug/framecast clients/ci.sh
fi

step "Autobahn|TestSuite 12.* 13.* (permessage-deflate, started before the clients)"
deflate_rc=0
wait "$deflate_pid" || deflate_rc=$?
grep -v '^case ' "$deflate_log" || true
[[ $deflate_rc == 0 ]] || { echo "error: Autobahn 12.*/13.* failed (cases: $deflate_log)" >&2; exit 1; }

step "all passed in $((SECONDS - started)) s"
