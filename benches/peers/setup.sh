#!/usr/bin/env bash
# Installs or builds the peer servers from their package registries (idempotent):
#   uws-js, node-ws     npm ci from the committed package-lock.json (Node.js 20 + npm)
#   py-websockets       a venv with the hashed requirements.txt (python3 -m venv)
#   go-gorilla          Debian's golang-go + golang-github-gorilla-websocket-dev (apt-get)
#   rust-tokio-tungstenite  cargo build --release --locked (its own Cargo.lock, own workspace)
#
# usage: benches/peers/setup.sh [NAME...]   (default: $SERVERS, else all five)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
  set -- ${SERVERS-uws-js node-ws go-gorilla py-websockets rust-tokio-tungstenite}
fi
if ! command -v taskset >/dev/null || ! command -v ss >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y util-linux iproute2
fi
for s in "$@"; do
  [ -x "$HERE/servers/$s/setup.sh" ] || { echo "setup.sh: no peer $s (have: $(ls "$HERE/servers" | tr '\n' ' '))" >&2; exit 2; }
  echo "== $s"
  "$HERE/servers/$s/setup.sh"
done
