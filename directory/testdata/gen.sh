#!/bin/sh
# gen.sh rebuilds the LDIF fixtures from the certificate files beside it.
#
# The certificates were made once with openssl:
#   alice.der        RSA, SAN email:alice@example.com, emailProtection
#   bob.der          EC P-256, SAN email:bob@example.org, emailProtection
#   alice-smime.p7b  `openssl cms -sign -stream -binary -outform DER` with
#                    alice's key: a CMS SignedData in BER, indefinite lengths
#                    (30 80 ...), as Outlook and NSS write them.
# The fixtures are written by this script, not by the package's own writer, so
# the reader is tested against LDIF it did not produce. Run it from this
# directory: sh gen.sh
set -eu

b64() { base64 -w0 "$1"; }

# fold WIDTH: folds stdin lines to WIDTH columns the RFC 2849 way (first line
# WIDTH octets, each continuation a space and WIDTH-1 octets).
fold_ldif() {
	awk -v w="$1" '{
		s = $0
		print substr(s, 1, w); s = substr(s, w + 1)
		while (length(s) > 0) { print " " substr(s, 1, w - 1); s = substr(s, w) }
	}'
}

ALICE=$(b64 alice.der)
BOB=$(b64 bob.der)
SMIME=$(b64 alice-smime.p7b)

# Active Directory, as ldifde exports it: no version line, objectGUID in
# base64, proxyAddresses, a tombstone with a base64 DN carrying a newline.
{
	cat <<EOF
# Exported from corp.example.com with ldifde
#  -l "objectGUID,mail,proxyAddresses,userCertificate,userSMIMECertificate"
# (this comment's second line is a folded continuation)

dn: CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=com
changetype: add
objectClass: top
objectClass: person
objectClass: user
cn: Alice Example
objectGUID:: 4AQlP4lP0xGaDAMF6CwzAQ==
userPrincipalName: alice@corp.example.com
mail: Alice@Example.com
proxyAddresses: SMTP:Alice@Example.com
proxyAddresses: smtp:alice.example@corp.example.com
proxyAddresses: X500:/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=alice
EOF
	echo "userCertificate:: $ALICE" | fold_ldif 76
	echo "userSMIMECertificate:: $SMIME" | fold_ldif 76
	cat <<EOF
whenChanged: 20240102030405.0Z

dn: CN=Bob Example,OU=Staff,DC=corp,DC=example,DC=com
changetype: add
objectGUID:: AQIDBAUGBwgJCgsMDQ4PEA==
userPrincipalName: bob@corp.example.com
mail: bob@example.org
EOF
	echo "userCertificate:: $BOB" | fold_ldif 76
	echo "userCertificate:: $ALICE" | fold_ldif 76
	cat <<EOF

# a tombstone: the DN carries a newline, so it is base64
dn:: Q049Q2Fyb2wgRGVsZXRlZApERUw6NmIxYzRlMmEtNWQzZi00YTdiLTljOGQtMGUxZjJhM2I0Y
 zVkLENOPURlbGV0ZWQgT2JqZWN0cyxEQz1jb3JwLERDPWV4YW1wbGUsREM9Y29t
objectGUID:: Kk4caz9de0qcjQ4fKjtMXQ==
isDeleted: TRUE
EOF
} >ad-ldifde.ldif

# OpenLDAP, as slapcat writes it (folded at 78), with CRLF line endings,
# entryUUID, userCertificate;binary and a base64 UTF-8 DN.
{
	cat <<EOF
version: 1

# people
#  (a folded comment continuation)
dn:: Y249Wm/DqyDDhHJnZXIsb3U9cGVvcGxlLGRjPWV4YW1wbGUsZGM9b3Jn
objectClass: inetOrgPerson
cn:: Wm/DqyDDhHJnZXI=
entryUUID: 8a3b6c1e-2f4d-4e5a-9b6c-7d8e9f0a1b2c
mail:: em/Dq0BleGFtcGxlLm9yZw==
EOF
	echo "userCertificate;binary:: $BOB" | fold_ldif 78
	printf '\n\n\n'
	cat <<EOF
dn: uid=dave,ou=people,dc=example,dc=org
entryUUID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
MAIL: dave@example.org
EOF
	echo "userSMIMECertificate:: $SMIME" | fold_ldif 78
} | sed 's/$/\r/' >openldap-slapcat-crlf.ldif

# No identifiers at all (the ID is the DN), odd but valid spellings, and no
# newline at the end of the file.
{
	cat <<'EOF'
version:   1
dn: cn=Eve Plain,dc=example,dc=net
Mail:     eve@example.net
proxyaddresses: smtp:eve.plain@example.net
proxyAddresses;range=0-*: SMTP:EVE@EXAMPLE.NET
proxyAddresses: smtp:eve.alias@exa
 mple.net
userPrincipalName:
description: a plain value: with a colon
userCertificate: not base64, kept as its bytes


dn: cn=Frank Empty,dc=example,dc=net
EOF
	printf 'isDeleted: FALSE'
} >plain.ldif

# Error cases: each fixture is bad at the line named in ldif_test.go.
printf 'dn: cn=a,dc=example\nmail: a@example\n\ndn: cn=b,dc=example\nchangetype: modify\nreplace: mail\nmail: b@example\n-\n' >err-changetype.ldif
printf 'dn: cn=a,dc=example\nmail: a@example\njpegPhoto:< file:///etc/passwd\n' >err-url.ldif
printf 'version: 1\n\ndn: cn=a,dc=example\ncontrol: 1.2.840.113556.1.4.805 true\nchangetype: delete\n' >err-control.ldif
printf '# no dn\n\nmail: a@example\ndn: cn=a,dc=example\n' >err-nodn.ldif
printf 'dn: cn=a,dc=example\nuserCertificate:: MIIB!!notbase64\n' >err-base64.ldif
printf ' continued from nothing\ndn: cn=a,dc=example\n' >err-fold-start.ldif
printf 'dn: cn=a,dc=example\n\n continued from a blank line\n' >err-fold-blank.ldif
printf 'version: 2\n\ndn: cn=a,dc=example\n' >err-version.ldif
printf 'dn: cn=a,dc=example\nmail a@example\n' >err-nocolon.ldif
printf 'dn: cn=a,dc=example\nobjectGUID:: AQID\n' >err-objectguid.ldif
printf 'dn: cn=a,dc=example\nmail: a@example\ndn: cn=b,dc=example\n' >err-dn-twice.ldif
printf 'dn: cn=a,dc=example\n: no name\n' >err-noname.ldif
printf 'dn:: ****\n' >err-dn-base64.ldif
