#!/usr/bin/env bash
# Wire forms side by side on one framecast binary: uncompressed, permessage-deflate, and tick
# batches with deflate, interleaved (plain, deflate, batch, plain, ...) so that drift on a shared
# machine hits all three alike. Server: 1 shard pinned to CPU 0; framecast-load on CPU 1, every
# subscriber offering deflate where the form needs it, realistic `positions` payloads (fresh
# random numbers in every event). Prints one line per run and a median per form; a load core
# busy near 100 % means framecast-load was the limit, not the server.
#
#   benches/wire/run.sh                      # 1000 subs, 500 msg/s, 3 rounds
#   SUBS=5000 RATE=100 ROUNDS=2 benches/wire/run.sh
#   FORMS="plain wss" benches/wire/run.sh    # TLS: the same, over wss:// (test certificate)
#
# Environment: SUBS [1000] RATE [500] PAYLOAD [256] ROUNDS [3] DURATION [10] PORT [9560]
#   FORMS ["plain deflate batch"; also wss, wss-deflate: TLS with tests/fixtures/tls]
#   FRAMECAST_ARGS [] extra server flags
# Wrap it in your machine's benchmark lock: it keeps both cores busy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SUBS=${SUBS:-1000} RATE=${RATE:-500} PAYLOAD=${PAYLOAD:-256} ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10} PORT=${PORT:-9560} FORMS=${FORMS:-plain deflate batch}
FRAMECAST_ARGS=${FRAMECAST_ARGS:-}

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin framecast --bin framecast-load
results=$(mktemp)
trap 'rm -f "$results"' EXIT

run_one() { # form
    local form=$1 query="" flags="--payload-kind positions" scheme=ws host=127.0.0.1 tls=""
    local certs="$ROOT/tests/fixtures/tls"
    case $form in
        wss*) scheme=wss; host=localhost; flags="$flags --tls-ca $certs/ca.pem"
              tls="--tls-cert-file $certs/server-rsa.pem --tls-key-file $certs/server-rsa.key" ;;
    esac
    case $form in
        plain | wss) ;;
        deflate | wss-deflate) flags="$flags --deflate" ;;
        batch) flags="$flags --deflate"; query="?batch=1" ;;
        *) echo "run.sh: unknown form $form" >&2; exit 2 ;;
    esac
    # shellcheck disable=SC2086 # word-split flags on purpose
    taskset -c 0 "$ROOT/target/release/framecast" --listen "127.0.0.1:$PORT" --shards 1 \
        --log-level warn $tls $FRAMECAST_ARGS >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 50); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done
    # shellcheck disable=SC2086
    taskset -c 1 "$ROOT/target/release/framecast-load" --url "$scheme://$host:$PORT/ws$query" \
        --server-pid "$pid" --subs "$SUBS" --rate "$RATE" --tick-ms 1 --payload-bytes "$PAYLOAD" \
        --warmup 2 --duration "$DURATION" $flags --json --quiet 2>/dev/null | tail -1 |
        python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("%s\t%.0f\t%.1f\t%.1f\t%.4f\t%.1f\t%s\t%.0f" % (sys.argv[1], d["server_cpu_percent"],
      d["wire_bytes_per_msg"] or 0, d["payload_bytes_per_msg"] or 0, d["delivery_ratio"],
      d["latency_ms"]["p99"], d["deflate_negotiated"], d["loadgen_core_busy_percent"]))' "$form" | tee -a "$results"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "subs=$SUBS rate=$RATE payload=$PAYLOAD rounds=$ROUNDS duration=${DURATION}s ($(date -u +%FT%TZ), $(git -C "$ROOT" rev-parse --short HEAD))"
printf 'form\tcpu%%\twire B/msg\tpayload B/msg\tratio\tp99 ms\tdeflate conns\tload core busy %%\n'
for _ in $(seq "$ROUNDS"); do
    for form in $FORMS; do run_one "$form"; done
done
echo "medians:"
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
forms = list(dict.fromkeys(r[0] for r in rows))
plain = None
for f in forms:
    rs = [r for r in rows if r[0] == f]
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    wire, payload = med(2), med(3)
    if f == "plain":
        plain = wire
    vs = " (%.2f of plain)" % (wire / plain) if plain else ""
    print("%-8s cpu %3.0f%%  wire %6.1f B/msg%s  payload %.1f  ratio %.4f  p99 %.1f ms  load core %.0f%%" % (
        f, med(1), wire, vs, payload, med(4), med(5), med(7)))
EOF
