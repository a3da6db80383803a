#!/bin/sh
# gen-brainpool.sh makes the brainpool fixture of the certificateUserIds
# tests and, from openssl's own output, the values each format must give.
# Run it from this directory: sh gen-brainpool.sh. It needs openssl 3.
#
#   brainpool-ca.der  an EC P-256 CA, DC=org, DC=example, CN=Brainpool Mail CA
#   dora-brainpool.der a brainpoolP256r1 user it issued (crypto/x509 refuses
#                     it: "unsupported elliptic curve"); SAN dora@example.org,
#                     a SKI, serial 0x00c0ffee (high bit set)
#
# values-brainpool.golden holds "file format value" lines.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

days=18250 # fifty years: the fixtures must not expire under the tests

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" \
	-subj "/DC=org/DC=example/CN=Brainpool Mail CA" -days $days \
	-addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-outform DER -out brainpool-ca.der
cat > "$tmp/dora.ext" <<X
basicConstraints=CA:false
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=emailProtection
subjectAltName=email:dora@example.org
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
X
openssl ecparam -name brainpoolP256r1 -genkey -noout -out "$tmp/dora.key"
openssl req -new -key "$tmp/dora.key" -subj "/CN=Dora Brainpool" -out "$tmp/dora.csr"
openssl x509 -req -in "$tmp/dora.csr" -CA brainpool-ca.der -CAform DER -CAkey "$tmp/ca.key" \
	-set_serial 0xc0ffee -days $days -extfile "$tmp/dora.ext" -outform DER -out dora-brainpool.der

ski=$(openssl x509 -inform DER -in dora-brainpool.der -noout -ext subjectKeyIdentifier | sed -n 2p | tr -d ' :' | tr 'a-f' 'A-F')
thumb=$(openssl x509 -inform DER -in dora-brainpool.der -noout -fingerprint -sha1 | sed 's/^.*=//' | tr -d ':')
serial=$(openssl x509 -inform DER -in dora-brainpool.der -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f')
{
	echo "# file format value (made by gen-brainpool.sh from openssl's output)"
	echo "dora-brainpool.der issuer_serial X509:<I>DC=org,DC=example,CN=Brainpool Mail CA<SR>00$serial"
	echo "dora-brainpool.der ski X509:<SKI>$ski"
	echo "dora-brainpool.der sha1_pukey X509:<SHA1-PUKEY>$thumb"
	echo "dora-brainpool.der rfc822 X509:<RFC822>dora@example.org"
} > values-brainpool.golden
