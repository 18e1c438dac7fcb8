#!/usr/bin/env bash
# Side-by-side benchmark of framecast against the peer servers, everything from this repository:
# builds framecast and framecast-load in release mode, sets up the peers named in SERVERS from
# their package registries (benches/peers/setup.sh; idempotent), and runs benches/peers/compare.sh
# with framecast as one more server (1 shard, pinned to CPU 0; framecast-load on CPU 1), speaking
# framecast's own subscribe/publish protocol while the peers get the same messages raw.
#
# usage: benches/compare-peers.sh [compare.sh options, e.g. --workloads "W1"]
# environment (defaults in brackets):
#   SERVERS [uws-js]  (any of: uws-js node-ws go-gorilla py-websockets rust-tokio-tungstenite;
#                      empty for framecast alone)
#   FRAMECAST_ARGS [] extra server flags, e.g. "--tick-hz 0"   NAME [framecast]
#   FRAMECAST_QUERY [] appended to framecast's WebSocket URL, e.g. "?batch=1" (tick batches)
#   W1_RATES ["50 200 1000 3000 6000 10000"]; everything else compare.sh reads (WORKLOADS,
#   OUT_DIR, W1_DURATION, W2_BURSTS, QUIET_WAIT, ...) passes through; see its header.
# On a shared machine, wrap the whole command in your lock (e.g. flock /tmp/LOCK ...): it builds
# and then keeps both cores busy.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVERS=${SERVERS-uws-js}
NAME=${NAME:-framecast}
FRAMECAST_ARGS=${FRAMECAST_ARGS:-}
export W1_RATES=${W1_RATES:-"50 200 1000 3000 6000 10000"}

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin framecast --bin framecast-load
if [ -n "$SERVERS" ]; then
  # shellcheck disable=SC2086 # a list of names
  "$ROOT/benches/peers/setup.sh" $SERVERS
fi

# framecast-load speaks framecast's protocol by default (subscribe command; publish command with
# T=<send time> and the filler in its data); only the URL's path differs from the peers.
FLAGS="--url ws://127.0.0.1:{PORT}/ws${FRAMECAST_QUERY:-}"
SERVER="$ROOT/target/release/framecast --listen 127.0.0.1:{PORT} --shards 1 --log-level warn $FRAMECAST_ARGS"

export SERVERS LOAD="$ROOT/target/release/framecast-load"
[ -n "$SERVERS" ] || set -- --no-peers "$@"
# Extra arguments come first so that options (--workloads, --only) apply to the whole run.
exec "$ROOT/benches/peers/compare.sh" "$@" --name "$NAME" --load-args "$FLAGS" "$SERVER"
