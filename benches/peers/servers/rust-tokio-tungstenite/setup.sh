#!/usr/bin/env bash
# Builds the tokio-tungstenite broadcast peer from crates.io at the versions of its own Cargo.lock
# (--locked; it is its own workspace, outside framecast's; idempotent).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --locked --quiet
echo "rust-tokio-tungstenite: $(grep -A1 'name = "tokio-tungstenite"' Cargo.lock | tail -1 | tr -d ' ')"
