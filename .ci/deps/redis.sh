#!/usr/bin/env bash
# Installs redis-server (Debian package) for the rate-limit tests that share one Redis between
# two proxies. Idempotent; starts nothing: each test runs its own `redis-server --port <ephemeral>
# --save ''` on 127.0.0.1.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    redis-server --version
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt may be busy with another dependency script: wait for its lock instead of failing.
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get update -qq
apt_get install -y -qq --no-install-recommends redis-server >/dev/null
# the package's own service is not needed (and not wanted) on a CI machine
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
redis-server --version
