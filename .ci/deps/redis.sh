#!/usr/bin/env bash
# Installs redis-server for the black-box tests (session store, rate limiting). Idempotent; starts
# nothing: each test starts its own `redis-server --port <ephemeral> --save ''`.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: $(redis-server --version | head -n1)"
    exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq redis-server >/dev/null
echo "redis-server: $(redis-server --version | head -n1)"
