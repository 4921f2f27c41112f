#!/usr/bin/env bash
# The openssl command line, with which the TLS tests make a certificate at test time.
set -euo pipefail
if command -v openssl >/dev/null 2>&1; then
    openssl version
    exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends openssl >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends openssl; }
openssl version
