#!/usr/bin/env bash
# Idle memory per wss:// connection with kernel TLS (`tls_kernel = "auto"`) and without ("off"),
# inside the kernel-TLS VM of tests/ktls/vm.sh (this host's kernel has no CONFIG_TLS): SUBS idle
# subscribers (default 4000; ECDSA certificate, handshakes are slow under emulation), each form
# twice. Memory, unlike CPU, means the same under emulation. Needs release binaries
# (cargo build --release -p framecast -p framecast-load); wrap it in the benchmark lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
subs=${SUBS:-4000}
inner=$(mktemp /tmp/idle-ktls.XXXXXX)
trap 'rm -f "$inner"' EXIT
cat >"$inner" <<EOS
set -e
echo "127.0.0.1 localhost" >/etc/hosts
C=\$PWD/tests/fixtures/tls
for kernel in auto off auto off; do
  target/release/framecast --listen 127.0.0.1:18443 --insecure-api --shards 1 --log-level warn \\
    --tls-kernel \$kernel --tls-cert-file \$C/server-ecdsa.pem --tls-key-file \$C/server-ecdsa.key &
  pid=\$!
  sleep 3
  target/release/framecast-load --url wss://localhost:18443/ws --tls-ca \$C/ca.pem --server-pid \$pid \\
    --subs $subs --src-ips 4 --rate 0 --settle-ms 3000 --warmup 0 --duration 5 --json --quiet \\
    2>/dev/null | tail -1 | sed "s/^/tls_kernel=\$kernel /"
  kill \$pid
  wait \$pid || true
done
EOS
tests/ktls/vm.sh --include target/release/framecast --include target/release/framecast-load \
    --include tests/fixtures --include "$inner" --timeout 3000 -- /bin/sh "$inner"
