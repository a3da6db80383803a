package graph

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smimesync/go-smimesync/internal/certparse"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Format is the certificate mapping a [Sink] writes to certificateUserIds.
type Format string

// The formats (YAML names). Microsoft documents these mappings for
// certificate-based authentication; the strong ones (issuer and serial,
// SKI, SHA1-PUKEY) bind one certificate, RFC822 binds an address.
const (
	// FormatIssuerSerial is X509:<I>issuer<SR>serial, the default.
	FormatIssuerSerial Format = "issuer_serial"
	// FormatSKI is X509:<SKI>subject key identifier.
	FormatSKI Format = "ski"
	// FormatSHA1PublicKey is X509:<SHA1-PUKEY>hash.
	FormatSHA1PublicKey Format = "sha1_pukey"
	// FormatRFC822 is X509:<RFC822>e-mail address.
	FormatRFC822 Format = "rfc822"
)

// ParseFormat returns the Format named s (case-insensitive), or a
// *ConfigError naming the ones there are.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatIssuerSerial, FormatSKI, FormatSHA1PublicKey, FormatRFC822:
		return f, nil
	case "":
		return FormatIssuerSerial, nil
	}
	return "", &ConfigError{Field: "certificate_user_ids.format", Reason: fmt.Sprintf("unknown format %q (want issuer_serial, ski, sha1_pukey or rfc822)", s)}
}

// UnmarshalText implements encoding.TextUnmarshaler, so YAML and JSON
// configuration refuse an unknown format with a clear error.
func (f *Format) UnmarshalText(b []byte) error {
	v, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// prefix returns the mapping prefix of f's values. The "X509:" prefix and
// the tag are case-sensitive (Microsoft's documentation).
func (f Format) prefix() string {
	switch f {
	case FormatSKI:
		return "X509:<SKI>"
	case FormatSHA1PublicKey:
		return "X509:<SHA1-PUKEY>"
	case FormatRFC822:
		return "X509:<RFC822>"
	}
	return "X509:<I>"
}

// CertificateUserID returns the certificateUserIds value that binds cert in
// format f. A certificate that yields none (no subject key identifier, no
// e-mail address, a value longer than 1024 characters) gives an error
// wrapping [ErrNoValue].
//
// The formats follow Microsoft's documentation of certificateUserIds and,
// where it says nothing, Microsoft's own Entra PowerShell module
// (Get-EntraUserCertificateUserIdsFromCertificate), which builds the values
// from a certificate with .NET:
//
//   - issuer_serial: "X509:<I>" + the issuer DN + "<SR>" + the serial
//     number. The issuer is written as .NET's
//     X500DistinguishedName.Decode(UseNewLines|DoNotUsePlusSign) writes it,
//     lines joined with ",": relative distinguished names in the order the
//     certificate encodes them (root first, as in Microsoft's example
//     "DC=com,DC=contoso,CN=CONTOSO-DC-CA", the reverse of RFC 4514), no
//     space after the commas, each attribute of a multi-valued RDN as its
//     own element, CryptoAPI's attribute names (S for state, E for e-mail,
//     OID.n.n for unknown ones), and a value that holds , + = " \ < > # ;
//     or a line break, or starts or ends with a space, in double quotes
//     with inner quotes doubled. The serial is the certificate's serial
//     number bytes as encoded (big-endian, a leading zero byte kept) in
//     lower-case hex, as the module's reversed GetSerialNumber and
//     certutil -dump show it.
//   - ski: "X509:<SKI>" + the subject key identifier extension's value in
//     upper-case hex (.NET's X509SubjectKeyIdentifierExtension). A
//     certificate without the extension yields no value.
//   - sha1_pukey: "X509:<SHA1-PUKEY>" + upper-case hex SHA-1 of the whole
//     certificate, as Microsoft's module computes it (see
//     [sha1PublicKeyHex], where that choice is kept).
//   - rfc822: "X509:<RFC822>" + the first SAN rfc822Name, else the
//     subject's emailAddress (CryptoAPI's CERT_NAME_EMAIL_TYPE), as
//     written in the certificate.
//
// Unconfirmed as a whole: how Entra compares a stored value with the
// certificate presented at sign-in (exact or case-insensitive, which DN
// string form) is not documented; the module's output is the best
// evidence. Every choice above lives in this function and the helpers it
// calls.
func CertificateUserID(cert *x509.Certificate, f Format) (string, error) {
	var v string
	switch f {
	case FormatIssuerSerial, "":
		issuer, err := IssuerString(cert.RawIssuer)
		if err != nil {
			return "", certError(cert, err)
		}
		serial, err := serialHex(cert.RawTBSCertificate)
		if err != nil {
			return "", certError(cert, err)
		}
		v = "X509:<I>" + issuer + "<SR>" + serial
	case FormatSKI:
		if len(cert.SubjectKeyId) == 0 {
			return "", certError(cert, fmt.Errorf("%w: no subject key identifier extension", ErrNoValue))
		}
		v = "X509:<SKI>" + strings.ToUpper(hex.EncodeToString(cert.SubjectKeyId))
	case FormatSHA1PublicKey:
		v = "X509:<SHA1-PUKEY>" + sha1PublicKeyHex(cert)
	case FormatRFC822:
		addr := ""
		if len(cert.EmailAddresses) > 0 {
			addr = cert.EmailAddresses[0]
		} else {
			for _, atv := range cert.Subject.Names {
				if atv.Type.Equal(oidEmailAddress) {
					if s, ok := atv.Value.(string); ok && s != "" {
						addr = s
						break
					}
				}
			}
		}
		if addr == "" {
			return "", certError(cert, fmt.Errorf("%w: no e-mail address in the subject alternative name or subject", ErrNoValue))
		}
		v = "X509:<RFC822>" + addr
	default:
		return "", &ConfigError{Field: "certificate_user_ids.format", Reason: fmt.Sprintf("unknown format %q", string(f))}
	}
	if n := utf8.RuneCountInString(v); n > maxValueLength {
		return "", certError(cert, fmt.Errorf("%w: the value has %d characters, more than %d", ErrNoValue, n, maxValueLength))
	}
	return v, nil
}

// sha1PublicKeyHex is the hash part of a SHA1-PUKEY value: the SHA-1 of
// the whole DER certificate (its thumbprint) in upper-case hex.
//
// The sources disagree on what is hashed. Microsoft's Entra PowerShell
// module (Get-EntraUserCertificateUserIdsFromCertificate) writes
// $cert.GetCertHashString(), the SHA-1 of the whole certificate, and its
// test expects X509:<SHA1-PUKEY>34BE02DC… for testdata/entra-powershell
// (the certificate's thumbprint); MS-PKCA and Samba's documentation of the
// on-premises Active Directory mapping say the SHA-1 of the public key.
// Entra's own module is followed here; which one Entra compares at sign-in
// is unconfirmed. This function is the one place that choice is made, and
// smimesync has never written the public-key form.
func sha1PublicKeyHex(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// sameBinding reports whether the certificateUserIds values a and b, both
// of format f, bind the same certificate (or address), the way a sink
// compares a user's existing values with those it derives:
//
//   - the "X509:" prefix and the tag ("<SKI>", "<SHA1-PUKEY>", "<I>",
//     "<SR>", "<RFC822>") exactly, as Microsoft spells them (its
//     documentation: the prefix is case-sensitive); so does the issuer DN
//     of an issuer-and-serial value;
//   - the hex (the SKI, the SHA-1, the serial) and the e-mail address
//     without regard to case: Microsoft's module writes SKI and SHA1-PUKEY
//     in upper case and the serial in lower case, but an administrator who
//     copied a value from certutil or openssl, or another tool, may have
//     written the other case, and Entra's uniqueness of values is assumed
//     to ignore case (the graphtest emulator's choice; unconfirmed).
//
// A value that differs from the derived one only in that case is the same
// binding in another spelling: the sink treats it as its own and replaces
// it, once, by the spelling it derives (Microsoft's module's), since how
// Entra compares a stored value with the certificate presented at sign-in
// is not documented and the module's spelling is the best evidence of a
// form that works. After that one PATCH the values are equal and nothing
// is rewritten.
func sameBinding(f Format, a, b string) bool {
	if a == b {
		return true
	}
	if f == "" {
		f = FormatIssuerSerial
	}
	p := f.prefix()
	if !strings.HasPrefix(a, p) || !strings.HasPrefix(b, p) {
		return false
	}
	a, b = a[len(p):], b[len(p):]
	if f == FormatIssuerSerial {
		ia, sa, okA := cutLast(a, "<SR>")
		ib, sb, okB := cutLast(b, "<SR>")
		return okA && okB && ia == ib && strings.EqualFold(sa, sb)
	}
	return strings.EqualFold(a, b)
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// Limits of certificateUserIds (Microsoft's documentation).
const (
	maxValues      = 10
	maxValueLength = 1024
)

func certError(cert *x509.Certificate, err error) error {
	sum := sha256.Sum256(cert.Raw)
	return &CertificateError{Fingerprint: hex.EncodeToString(sum[:]), Err: err}
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// attrNames are CryptoAPI's names for X.500 attribute types
// (CertNameToStr with CERT_X500_NAME_STR), by dotted OID.
var attrNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "SERIALNUMBER",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "S",
	"2.5.4.9":                    "STREET",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "T",
	"2.5.4.42":                   "G",
	"2.5.4.43":                   "I",
	"2.5.4.46":                   "dnQualifier",
	"1.2.840.113549.1.9.1":       "E",
	"0.9.2342.19200300.100.1.25": "DC",
}

// IssuerString writes a DER-encoded X.500 name (a certificate's RawIssuer
// or RawSubject) the way [CertificateUserID] writes issuers: in encoded
// order, comma-separated, CryptoAPI attribute names and quoting. Use it to
// fill CertificateUserIDs.ManagedIssuers from a CA certificate's
// RawSubject.
func IssuerString(der []byte) (string, error) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil {
		return "", fmt.Errorf("issuer name: %w", err)
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("issuer name: %d trailing bytes", len(rest))
	}
	var parts []string
	for _, rdn := range rdns {
		for _, atv := range rdn {
			name, ok := attrNames[atv.Type.String()]
			if !ok {
				name = "OID." + atv.Type.String()
			}
			parts = append(parts, name+"="+quoteValue(atv.Value))
		}
	}
	return strings.Join(parts, ","), nil
}

// quoteValue writes an attribute value as CertNameToStr does without
// CERT_NAME_STR_NO_QUOTING_FLAG.
func quoteValue(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		return "#" + hex.EncodeToString(x)
	default:
		b, err := asn1.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return "#" + hex.EncodeToString(b)
	}
	need := s == "" || strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.ContainsAny(s, ",+=\"\\<>#;\r\n")
	if !need {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// serialHex returns the serial number of a TBSCertificate as its encoded
// content bytes in lower-case hex (big-endian two's complement, leading
// zero byte kept).
func serialHex(tbs []byte) (string, error) {
	in := cryptobyte.String(tbs)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return "", fmt.Errorf("serial number: malformed TBSCertificate")
	}
	if !seq.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return "", fmt.Errorf("serial number: malformed version")
	}
	var serial cryptobyte.String
	if !seq.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 {
		return "", fmt.Errorf("serial number: malformed")
	}
	return hex.EncodeToString(serial), nil
}

// Values derives the certificateUserIds values of certs (DER X.509
// certificates) in format f, without duplicates, the certificate that
// stays valid longest first (so that when the list is full, the freshest
// certificates keep their binding). A value that cannot be derived is
// skipped; its error (a *CertificateError) is returned in errs, and the
// others still count. A certificate whose only fault, for crypto/x509, is
// an elliptic curve it does not implement (brainpoolP256r1, …) yields its
// values like any other: no format needs the key.
func Values(certs [][]byte, f Format) (values []string, errs []error) {
	type item struct {
		v        string
		notAfter time.Time
	}
	var items []item
	seen := map[string]bool{}
	for _, der := range certs {
		// A certificate crypto/x509 refuses only for its key (a brainpool
		// curve) still has an issuer, a serial, a SKI and an address.
		c, _, err := certparse.Parse(der)
		if err != nil {
			sum := sha256.Sum256(der)
			errs = append(errs, &CertificateError{Fingerprint: hex.EncodeToString(sum[:]), Err: err})
			continue
		}
		v, err := CertificateUserID(c, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !seen[v] {
			seen[v] = true
			items = append(items, item{v, c.NotAfter})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int { return b.notAfter.Compare(a.notAfter) })
	for _, it := range items {
		values = append(values, it.v)
	}
	return values, errs
}
