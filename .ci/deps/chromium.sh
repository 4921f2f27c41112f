#!/usr/bin/env bash
# Installs Debian's Chromium for the real-browser CORS test (driven by playwright-core from
# tests/node; never `npx playwright install`). Idempotent; starts nothing.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
    exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
