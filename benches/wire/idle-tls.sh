#!/usr/bin/env bash
# Idle memory per connection, ws vs wss (W3-style): 10000 idle subscribers over 4 source
# addresses, each form twice, server on CPU 0 and framecast-load on CPU 1. Needs release
# binaries (cargo build --release) and RLIMIT_NOFILE above 10000; wrap it in the benchmark lock.
set -u
cd "$(dirname "$0")/../.."
C=tests/fixtures/tls
for form in ws wss ws wss; do
  if [ $form = wss ]; then port=18443; url="wss://localhost:$port/ws"; srv="--tls-cert-file $C/server-rsa.pem --tls-key-file $C/server-rsa.key"; load="--tls-ca $C/ca.pem";
  else port=18080; url="ws://127.0.0.1:$port/ws"; srv=""; load=""; fi
  taskset -c 0 target/release/framecast --listen 0.0.0.0:$port --insecure-api --shards 1 --log-level warn $srv >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do ss -ltn | grep -q ":$port " && break; sleep 0.1; done
  taskset -c 1 target/release/framecast-load --url "$url" $load --server-pid $pid --subs 10000 --src-ips 4 --rate 0 --settle-ms 2000 --warmup 0 --duration 5 --json --quiet 2>/dev/null | tail -1 | python3 -c '
import json,sys; d=json.loads(sys.stdin.read()); print(sys.argv[1], {k: v for k, v in d.items() if "rss" in k or k in ("subscribers","errors","disconnects","connected")})' $form
  kill $pid; wait $pid 2>/dev/null
done
