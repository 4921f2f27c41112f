#!/usr/bin/env bash
# Installs Debian's Chromium for the real-browser CORS test (tests/tests/cors_browser.rs, driven by
# playwright-core from tests/node; never `npx playwright install`). Idempotent; starts nothing.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
    exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# apt may be busy with another dependency script: wait for its lock instead of failing.
apt_get() { $SUDO apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get update -qq
apt_get install -y -qq chromium >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
