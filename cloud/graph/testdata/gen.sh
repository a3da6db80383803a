#!/bin/sh
# gen.sh makes the certificates of the certificateUserIds tests and, from
# openssl's own output (not the graph package's), the values each format
# must give. Run it from this directory: sh gen.sh. It needs openssl 3.
#
#   ca-dc.der        CA whose subject, as encoded, is DC=com, DC=contoso,
#                    O="Contoso, Ltd", ST=Bayern, CN=Contoso Mail CA
#   ca-multi.der     CA with a multi-valued RDN (CN + OU) and an e-mail address
#   alice.der        issued by ca-dc: serial with the high bit set (encoded
#                    with a leading zero byte), SAN alice@contoso.com, SKI
#   bob.der          issued by ca-multi: no SKI extension, no SAN, the address
#                    only in the subject's emailAddress
#   carol.der        issued by ca-dc: a small serial, two SAN addresses
#
# values.golden holds "file format value" lines.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

days=18250 # fifty years: the fixtures must not expire under the tests

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca-dc.key" \
	-subj "/DC=com/DC=contoso/O=Contoso\, Ltd/ST=Bayern/CN=Contoso Mail CA" -days $days \
	-addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-outform DER -out ca-dc.der
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca-multi.key" \
	-multivalue-rdn -subj "/C=DE/O=Example/CN=Multi CA+OU=Ops/emailAddress=pki@example.org" -days $days \
	-addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-outform DER -out ca-multi.der

issue() { # name ca serial subject extfile
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/$1.key" \
		-subj "$4" -out "$tmp/$1.csr"
	openssl x509 -req -in "$tmp/$1.csr" -CA "$2.der" -CAform DER -CAkey "$tmp/$2.key" \
		-set_serial "$3" -days $days -extfile "$5" -outform DER -out "$1.der"
}

cat > "$tmp/alice.ext" <<X
basicConstraints=CA:false
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=emailProtection
subjectAltName=email:alice@contoso.com
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
X
cat > "$tmp/bob.ext" <<X
basicConstraints=CA:false
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=emailProtection
subjectKeyIdentifier=none
authorityKeyIdentifier=none
X
cat > "$tmp/carol.ext" <<X
basicConstraints=CA:false
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=emailProtection
subjectAltName=email:carol@contoso.com,email:c.contoso@contoso.com
subjectKeyIdentifier=hash
X
issue alice ca-dc 0x8a4b1c2d3e4f50617283 "/CN=Alice Example" "$tmp/alice.ext"
issue bob ca-multi 0x0102 "/CN=Bob Example/emailAddress=Bob@Example.org" "$tmp/bob.ext"
issue carol ca-dc 7 "/CN=Carol Example" "$tmp/carol.ext"

# The issuer strings as Microsoft's module writes them: encoded order, no
# space after commas, ST as S, a multi-valued RDN split, quoting.
issuer_dc='DC=com,DC=contoso,O="Contoso, Ltd",S=Bayern,CN=Contoso Mail CA'
issuer_multi='C=DE,O=Example,OU=Ops,CN=Multi CA,E=pki@example.org' # the RDN's SET is DER-sorted: OU before CN

serial() { # lower-case hex of the serial's encoded bytes (a leading 00 when the high bit is set)
	s=$(openssl x509 -inform DER -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f')
	[ $((${#s} % 2)) -eq 1 ] && s="0$s"
	case $s in [89a-f]*) s="00$s" ;; esac
	echo "$s"
}
ski() {
	openssl x509 -inform DER -in "$1" -noout -ext subjectKeyIdentifier 2>/dev/null | sed -n 2p | tr -d ' :' | tr 'a-f' 'A-F'
}
thumb() {
	openssl x509 -inform DER -in "$1" -noout -fingerprint -sha1 | sed 's/^.*=//' | tr -d ':' | tr 'a-f' 'A-F'
}

{
	echo "# file format value (made by gen.sh from openssl's output)"
	echo "alice.der issuer_serial X509:<I>$issuer_dc<SR>$(serial alice.der)"
	echo "alice.der ski X509:<SKI>$(ski alice.der)"
	echo "alice.der sha1_pukey X509:<SHA1-PUKEY>$(thumb alice.der)"
	echo "alice.der rfc822 X509:<RFC822>alice@contoso.com"
	echo "bob.der issuer_serial X509:<I>$issuer_multi<SR>$(serial bob.der)"
	echo "bob.der ski -"
	echo "bob.der sha1_pukey X509:<SHA1-PUKEY>$(thumb bob.der)"
	echo "bob.der rfc822 X509:<RFC822>Bob@Example.org"
	echo "carol.der issuer_serial X509:<I>$issuer_dc<SR>$(serial carol.der)"
	echo "carol.der ski X509:<SKI>$(ski carol.der)"
	echo "carol.der sha1_pukey X509:<SHA1-PUKEY>$(thumb carol.der)"
	echo "carol.der rfc822 X509:<RFC822>carol@contoso.com"
} > values.golden

# The end-to-end fixtures: e2e.ldif as ldifde would export the users, and
# e2e-removed.ldif, the same users after their certificates were removed.
#   Alice  cloud-only in Entra (found by UPN), alice.der
#   Carol  cloud-only (found by proxy address), carol.der
#   Bob    synchronised by Entra Connect (found by objectGUID), bob.der
#   Dave   no Entra user
ldif() { # with-certificates?
	cat <<X
dn: CN=Alice Example,OU=Staff,DC=contoso,DC=com
objectGUID:: 7xqk8cM8rEOJvVR0u1xqXw==
userPrincipalName: alice@contoso.com
mail: alice@contoso.com
X
	[ "$1" = yes ] && echo "userCertificate:: $(base64 -w0 alice.der)"
	cat <<X

dn: CN=Carol Example,OU=Staff,DC=contoso,DC=com
objectGUID:: ZbE7h8QmUE+Vh1n7k2ofIA==
userPrincipalName: carol@corp.contoso.com
mail: carol@contoso.com
proxyAddresses: SMTP:carol@contoso.com
X
	[ "$1" = yes ] && echo "userCertificate:: $(base64 -w0 carol.der)"
	cat <<X

dn: CN=Bob Example,OU=Staff,DC=contoso,DC=com
objectGUID:: 4AQlP4lP0xGaDAMF6CwzAQ==
userPrincipalName: bob@contoso.com
mail: Bob@Example.org
X
	[ "$1" = yes ] && echo "userCertificate:: $(base64 -w0 bob.der)"
	cat <<X

dn: CN=Dave Example,OU=Staff,DC=contoso,DC=com
objectGUID:: AAECAwQFBgcICQoLDA0ODw==
userPrincipalName: dave@contoso.com
mail: dave@contoso.com
X
	[ "$1" = yes ] && echo "userCertificate:: $(base64 -w0 carol.der)"
	return 0
}
ldif yes > e2e.ldif
ldif no > e2e-removed.ldif
