#!/usr/bin/env bash
# nginx for the deployment tests (tests/tests/nginx.rs). Installs only; each test starts its own
# nginx on an ephemeral loopback port with its own prefix directory.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; then
    echo "nginx: $(/usr/sbin/nginx -v 2>&1 || nginx -v 2>&1)"
    exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends nginx-light >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends nginx-light; }
# the package may start a system nginx on :80; the tests do not use it
$SUDO service nginx stop >/dev/null 2>&1 || true
echo "nginx: $(/usr/sbin/nginx -v 2>&1)"
