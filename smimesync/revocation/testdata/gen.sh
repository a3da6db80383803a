#!/bin/sh
# Regenerates the OpenSSL-made CRLs that crl_test.go reads. They come from a
# tool other than Go's crypto, so the issuingDistributionPoint and delta-CRL
# encodings the tests parse are not the checker's own.
#
#   cd smimesync/revocation/testdata && sh gen.sh
#
# Needs openssl(1) 3.x. The CRLs are valid for 100 years; the tests use
# their ThisUpdate as the clock.
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/db"
: >"$work/db/index.txt"
echo 1000 >"$work/db/crlnumber"
cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = ca
[ca]
dir = $work/db
database = \$dir/index.txt
crlnumber = \$dir/crlnumber
new_certs_dir = \$dir
certificate = $PWD/openssl-ca.pem
private_key = $work/ca.key
default_md = sha256
default_crl_days = 36500
policy = any
[any]
commonName = supplied
[plain]
authorityKeyIdentifier = keyid
[idp_user]
authorityKeyIdentifier = keyid
issuingDistributionPoint = critical, @idp_user_sect
[idp_user_sect]
fullname = URI:http://crl.example.test/openssl.crl
onlyuser = TRUE
[idp_ca]
issuingDistributionPoint = critical, @idp_ca_sect
[idp_ca_sect]
onlyCA = TRUE
[idp_reasons]
issuingDistributionPoint = critical, @idp_reasons_sect
[idp_reasons_sect]
onlysomereasons = keyCompromise, CACompromise
[idp_indirect]
issuingDistributionPoint = critical, @idp_indirect_sect
[idp_indirect_sect]
indirectCRL = TRUE
[idp_attr]
issuingDistributionPoint = critical, @idp_attr_sect
[idp_attr_sect]
onlyAA = TRUE
[idp_relative]
issuingDistributionPoint = critical, @idp_relative_sect
[idp_relative_sect]
relativename = rel
[rel]
CN = partition 1
[delta]
deltaCRL = critical, DER:02:02:03:E7
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$work/ca.key" -out openssl-ca.pem -days 36500 -subj "/CN=OpenSSL Test CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
# Two leaf certificates, serials 0x1001 and 0x1002; the first is revoked.
for serial in 1001 1002; do
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/leaf.key" \
		-out "$work/leaf.csr" -subj "/CN=leaf $serial" 2>/dev/null
	openssl x509 -req -in "$work/leaf.csr" -CA openssl-ca.pem -CAkey "$work/ca.key" \
		-set_serial 0x$serial -days 36500 -out "$work/leaf-$serial.pem" 2>/dev/null
	# Register the certificate in the CA database so that -revoke works.
	openssl ca -config "$work/ca.cnf" -valid "$work/leaf-$serial.pem" 2>/dev/null
done
openssl ca -config "$work/ca.cnf" -revoke "$work/leaf-1001.pem" -crl_reason keyCompromise 2>/dev/null
for ext in plain idp_user idp_ca idp_reasons idp_indirect idp_attr idp_relative delta; do
	openssl ca -config "$work/ca.cnf" -gencrl -crlexts "$ext" -out "$work/$ext.pem" 2>"$work/err" || { cat "$work/err"; exit 1; }
	openssl crl -in "$work/$ext.pem" -outform DER -out "openssl-$ext.crl"
done
cp "$work/plain.pem" openssl-plain.pem.crl
