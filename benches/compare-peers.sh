#!/usr/bin/env bash
# Side-by-side benchmark of framecast against the peer servers, the way benches/RESULTS.md was
# measured: copies the peers kit (../shared/peers, read-only in this project's layout) to a
# writable directory, sets up wsload and the chosen peers there (idempotent), builds framecast in
# release mode and runs the kit's compare.sh with framecast's subscribe/publish messages, one
# shard pinned to CPU 0 and the load generator on CPU 1.
#
# usage: benches/compare-peers.sh [compare.sh options, e.g. --workloads "W1"]
# environment (defaults in brackets):
#   PEERS_SRC [../shared/peers]   PEERS_DIR [${TMPDIR:-/tmp}/framecast-peers]
#   SERVERS [uws-js]  (any of: node-ws uws-js go-gorilla py-websockets rust-tokio-tungstenite;
#                      empty for framecast alone)
#   FRAMECAST_ARGS [] extra server flags, e.g. "--tick-hz 0"   NAME [framecast]
#   W1_RATES ["50 200 1000 3000 6000 10000"]; everything else compare.sh reads (WORKLOADS,
#   OUT_DIR, W2_BURSTS, ...) passes through.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/peers}
PEERS_DIR=${PEERS_DIR:-${TMPDIR:-/tmp}/framecast-peers}
SERVERS=${SERVERS-uws-js}
NAME=${NAME:-framecast}
FRAMECAST_ARGS=${FRAMECAST_ARGS:-}
export W1_RATES=${W1_RATES:-"50 200 1000 3000 6000 10000"}

[ -f "$PEERS_SRC/compare.sh" ] || {
  echo "compare-peers: no peers kit at $PEERS_SRC (set PEERS_SRC)" >&2
  exit 2
}
mkdir -p "$PEERS_DIR"
cp -r "$PEERS_SRC/." "$PEERS_DIR/"
chmod -R u+w "$PEERS_DIR"
if [ -n "$SERVERS" ]; then
  SERVERS="$SERVERS" "$PEERS_DIR/setup-all.sh" # wsload, then each peer's setup.sh
else
  (cd "$PEERS_DIR/wsload" && cargo build --release --quiet)
fi
cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin framecast

FLAGS="--url ws://127.0.0.1:{PORT}/ws"
FLAGS+=" --subscribe-msg '{\"type\":\"subscribe\",\"channels\":[\"bench\"]}'"
FLAGS+=" --publish-template '{\"type\":\"publish\",\"channel\":\"bench\",\"data\":\"T={T} SEQ={SEQ} {PAD}\"}'"
SERVER="$ROOT/target/release/framecast --listen 127.0.0.1:{PORT} --shards 1 --log-level warn $FRAMECAST_ARGS"

cd "$PEERS_DIR"
export SERVERS
[ -n "$SERVERS" ] || set -- --no-peers "$@" # compare.sh reads an empty SERVERS as "all"
# Extra arguments come first so that options (--workloads, --only) apply to the whole run.
exec ./compare.sh "$@" --name "$NAME" --wsload-args "$FLAGS" "$SERVER"
