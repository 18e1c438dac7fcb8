#!/usr/bin/env bash
# Installs ws from the npm registry, exactly as package-lock.json pins it (npm ci; idempotent).
set -euo pipefail
cd "$(dirname "$0")"
if ! node -e 'process.exit(require("./node_modules/ws/package.json").version === "8.23.0" ? 0 : 1)' 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "node-ws: node $(node --version) ws $(node -p 'require("./node_modules/ws/package.json").version')"
