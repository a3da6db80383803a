#!/usr/bin/env bash
# Installs what the tests of the shipped alert rules need: promtool, from
# the Debian package prometheus (about 19 MB to download). Debian 12 /
# Ubuntu, as root. Idempotent: does nothing when promtool is present.
#
# The package's own service is never started: a temporary policy-rc.d
# (exit 101) keeps apt from starting prometheus (and the node exporter it
# recommends is not installed). The test runs `promtool check rules` and
# `promtool test rules` on the files under deploy/prometheus; without
# promtool it skips, unless SMIMESYNC_REQUIRE_SERVERS=1.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "ops-packages: already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi
trap 'if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT

apt-get update -q
apt-get install -y -q --no-install-recommends prometheus
echo "ops-packages: installed"
