#!/usr/bin/env bash
# Installs uWebSockets.js binaries from the npm registry, exactly as package-lock.json pins them
# (npm ci; idempotent).
#
# Upstream uWebSockets.js is not published on the npm registry. Candidates inspected:
#  - @btc-vision/uwebsockets.js@20.57.0: upstream loader + prebuilt .node files, but its
#    linux-x64 binaries need GLIBC_2.38 (Debian 12 has 2.36) -> does not load there.
#  - uwebsockets@3.0.6 (used here): third-party republish of uWS.js v20 (upstream uws.js loader,
#    src/, source_commit b8704be9..., prebuilt uws_<platform>_<arch>_<abi>.node for ABI 83..141),
#    no install/preinstall/postinstall scripts; linux-x64 binary needs only GLIBC_2.27.
#    The binaries were not verified against upstream release artifacts.
set -euo pipefail
cd "$(dirname "$0")"
if ! node -e 'process.exit(require("./node_modules/uwebsockets/package.json").version === "3.0.6" ? 0 : 1)' 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node -e 'const u = require("uwebsockets"); if (typeof u.App !== "function") process.exit(1); console.log("uws-js: uwebsockets " + require("./node_modules/uwebsockets/package.json").version + " loads for node " + process.version + " (abi " + process.versions.modules + ")")'
