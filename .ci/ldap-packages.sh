#!/usr/bin/env bash
# Installs the directory servers the LDAP tests run (directory/ldapsource and
# its ldaptest harness): a Samba AD DC and OpenLDAP slapd, plus ldapsearch for
# the benchmark. Debian 12 / Ubuntu, as root. Idempotent: does nothing when
# everything is present.
#
# The packages' own services are never started: debconf keeps slapd from
# creating a system database, and a temporary policy-rc.d (exit 101) keeps
# apt from starting smbd/nmbd/samba-ad-dc/slapd. The harness runs its own
# servers on loopback, with every file under a temporary directory.
#
# Then run the tests with SMIMESYNC_REQUIRE_SERVERS=1, so that a missing
# server fails them instead of skipping them.
set -euo pipefail

have() {
  [ -x /usr/sbin/samba ] && [ -x /usr/bin/samba-tool ] && [ -x /usr/sbin/slapd ] &&
    ls /usr/lib/*/samba/vfs/acl_xattr.so >/dev/null 2>&1 && command -v openssl >/dev/null &&
    [ -d /usr/share/samba/setup ] && command -v ldapsearch >/dev/null
}
if have; then
  echo "ldap-packages: already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi
trap 'if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT

apt-get update -q
# samba-vfs-modules: provision needs acl_xattr.so; samba-ad-provision: the
# provision templates (/usr/share/samba/setup); samba-dsdb-modules: the AD
# database modules. ldap-utils: ldapsearch for the benchmark's comparison.
apt-get install -y -q --no-install-recommends \
  samba samba-dsdb-modules samba-vfs-modules samba-ad-provision ldb-tools \
  slapd ldap-utils openssl
echo "ldap-packages: installed"
