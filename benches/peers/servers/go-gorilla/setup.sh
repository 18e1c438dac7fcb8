#!/usr/bin/env bash
# Builds the gorilla chat-hub peer from Debian packages (golang-go and
# golang-github-gorilla-websocket-dev; GOPATH mode, so no Go module proxy is involved; idempotent).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/gorilla/websocket ]; then
  command -v apt-get >/dev/null || { echo "go-gorilla: needs apt-get (Debian/Ubuntu) for golang-go and golang-github-gorilla-websocket-dev" >&2; exit 1; }
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends golang-go golang-github-gorilla-websocket-dev
fi
mkdir -p bin
if [ ! -x bin/server ] || [ -n "$(find . -name '*.go' -newer bin/server)" ]; then
  GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/framecast-peers-go-cache}" \
    GOFLAGS= go build -o bin/server .
fi
echo "go-gorilla: $(go version | cut -d' ' -f3) gorilla/websocket $(dpkg-query -W -f='${Version}' golang-github-gorilla-websocket-dev)"
