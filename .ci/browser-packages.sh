#!/usr/bin/env bash
# Installs headless Chromium (the Debian package) for the tests that load
# the status page and the HTML report in a real browser
# (smimesync/status, internal/browsertest). Debian 12 / Ubuntu, as root.
# Idempotent: does nothing when it is present.
#
# Then run the tests with SMIMESYNC_REQUIRE_SERVERS=1, so that a missing
# browser fails them instead of skipping them.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  echo "browser-packages: already installed"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
echo "browser-packages: installed"
