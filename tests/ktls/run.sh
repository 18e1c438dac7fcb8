#!/usr/bin/env bash
# The kernel-TLS path of `wss://`: tests/tls.rs again, inside a VM whose kernel has the `tls`
# module (tests/ktls/vm.sh), with FRAMECAST_EXPECT_KTLS=1 so that every TLS 1.3 session must be
# handed to the kernel after its handshake (framecast_tls_kernel_sessions_total counts them) and
# the suite fails, rather than passing in userspace, if the guest kernel refuses it. On the host
# (no CONFIG_TLS here) `cargo test` runs the same suite on the userspace fallback.
#
#   tests/ktls/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --bin framecast
suite=$(cargo test -p framecast --test tls --no-run --message-format=json \
    | python3 -c 'import json, os, sys
want = os.path.join(os.getcwd(), "tests", "tls.rs")
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["src_path"] == want and m.get("executable"):
        print(m["executable"])')
[[ -x $suite ]] || { echo "error: no tests/tls.rs executable was built" >&2; exit 1; }
tests/ktls/vm.sh --include target/debug/framecast --include tests/fixtures \
    --env FRAMECAST_EXPECT_KTLS=1 --env RUST_BACKTRACE=1 --timeout 1200 -- "$suite" --test-threads 2
