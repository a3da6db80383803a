package smimesync_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// pkilintCase is one certificate of the pkilint S/MIME BR test suite.
type pkilintCase struct {
	name     string // path under testdata/pkilint-smime_br, without .crttest
	pem, der []byte
	findings string // the expected-findings CSV
}

// loadPKILint reads every .crttest file: a PEM certificate, then a CSV of
// the findings pkilint expects.
func loadPKILint(tb testing.TB) []pkilintCase {
	tb.Helper()
	const dir = "testdata/pkilint-smime_br"
	const end = "-----END CERTIFICATE-----"
	var cases []pkilintCase
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".crttest") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		i := bytes.Index(data, []byte(end))
		if i < 0 {
			return fmt.Errorf("%s: no %s", path, end)
		}
		pemPart := data[:i+len(end)]
		block, _ := pem.Decode(pemPart)
		if block == nil {
			return fmt.Errorf("%s: no PEM block", path)
		}
		rel, _ := filepath.Rel(dir, path)
		cases = append(cases, pkilintCase{
			name:     strings.TrimSuffix(filepath.ToSlash(rel), ".crttest"),
			pem:      pemPart,
			der:      block.Bytes,
			findings: string(data[i+len(end):]),
		})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(cases) != 97 {
		tb.Fatalf("found %d pkilint certificates, want 97", len(cases))
	}
	return cases
}

// opensslBinary returns the openssl command, skipping the test when it is
// missing unless SMIMESYNC_REQUIRE_SERVERS=1 asks for a failure instead.
func opensslBinary(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("SMIMESYNC_REQUIRE_SERVERS") == "1" {
			tb.Fatalf("openssl is required (SMIMESYNC_REQUIRE_SERVERS=1) but not installed: %v", err)
		}
		tb.Skipf("openssl not installed (apt-get install openssl); skipping: %v", err)
	}
	return path
}

// runOpenSSL runs openssl with args in dir and returns its standard output.
func runOpenSSL(tb testing.TB, dir string, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command(opensslBinary(tb), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// opensslView is what `openssl x509 -text` says about a certificate: an
// oracle independent of crypto/x509 and of the code under test.
type opensslView struct {
	keyAlg        string
	keyBits       int
	keyUsage      []string // nil when the extension is absent
	extKeyUsage   []string // nil when the extension is absent
	sanEmails     []string
	sanSMTPUTF8   []string
	isCA          bool
	hasKU, hasEKU bool
}

func opensslText(tb testing.TB, der []byte) opensslView {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.der"), der, 0o600); err != nil {
		tb.Fatal(err)
	}
	out := runOpenSSL(tb, dir, "x509", "-inform", "DER", "-in", "c.der", "-noout", "-text", "-nameopt", "utf8")
	lines := strings.Split(string(out), "\n")
	var v opensslView
	next := func(i int) string {
		if i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
		return ""
	}
	for i, line := range lines {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Public Key Algorithm:"):
			v.keyAlg = strings.TrimSpace(strings.TrimPrefix(line, "Public Key Algorithm:"))
		case strings.HasPrefix(line, "Public-Key: ("):
			v.keyBits, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, "Public-Key: ("), " bit)"))
		case strings.HasPrefix(line, "X509v3 Key Usage:"):
			v.hasKU = true
			v.keyUsage = strings.Split(next(i), ", ")
		case strings.HasPrefix(line, "X509v3 Extended Key Usage:"):
			v.hasEKU = true
			v.extKeyUsage = strings.Split(next(i), ", ")
		case strings.HasPrefix(line, "X509v3 Subject Alternative Name:"):
			for _, item := range strings.Split(next(i), ", ") {
				switch {
				case strings.HasPrefix(item, "email:"):
					v.sanEmails = append(v.sanEmails, strings.TrimPrefix(item, "email:"))
				case strings.HasPrefix(item, "othername: SmtpUTF8Mailbox::"):
					v.sanSMTPUTF8 = append(v.sanSMTPUTF8, strings.TrimPrefix(item, "othername: SmtpUTF8Mailbox::"))
				}
			}
		case line == "CA:TRUE":
			v.isCA = true
		}
	}
	return v
}

// expectedUsage derives CanEncrypt / CanSign from openssl's description,
// following FACTS.md "Certificates fit for S/MIME".
func (v opensslView) expectedUsage() (encrypt, sign bool) {
	var transport, agree, signs bool
	switch {
	case v.keyAlg == "rsaEncryption":
		transport, signs = true, true
	case v.keyAlg == "id-ecPublicKey":
		agree, signs = true, true
	case v.keyAlg == "ED25519":
		signs = true
	case v.keyAlg == "X25519":
		agree = true
	case strings.HasPrefix(v.keyAlg, "2.16.840.1.101.3.4.4."): // ML-KEM
		transport = true
	case strings.HasPrefix(v.keyAlg, "2.16.840.1.101.3.4.3."): // ML-DSA
		signs = true
	default:
		panic("test oracle: unknown key algorithm " + v.keyAlg)
	}
	if v.hasEKU && !slices.Contains(v.extKeyUsage, "E-mail Protection") && !slices.Contains(v.extKeyUsage, "Any Extended Key Usage") {
		return false, false
	}
	if !v.hasKU {
		return transport || agree, signs
	}
	encrypt = (transport && slices.Contains(v.keyUsage, "Key Encipherment")) ||
		(agree && slices.Contains(v.keyUsage, "Key Agreement"))
	sign = signs && slices.Contains(v.keyUsage, "Digital Signature")
	return encrypt, sign
}

func (v opensslView) expectedKeyType() string {
	switch v.keyAlg {
	case "rsaEncryption":
		return "RSA"
	case "id-ecPublicKey":
		return "ECDSA"
	case "ED25519":
		return "Ed25519"
	case "X25519":
		return "X25519"
	}
	return v.keyAlg // openssl 3.0 prints the OID of algorithms it does not know
}

// subjectEmails returns the subject's emailAddress values, via crypto/x509.
func subjectEmails(x *x509.Certificate) []string {
	var out []string
	for _, atv := range x.Subject.Names {
		if atv.Type.String() == "1.2.840.113549.1.9.1" {
			out = append(out, atv.Value.(string))
		}
	}
	return out
}

func lowerUnique(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			s = strings.ToLower(s)
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func TestParseCertificatePKILint(t *testing.T) {
	cases := loadPKILint(t)
	_, opensslErr := exec.LookPath("openssl")
	if opensslErr != nil {
		if os.Getenv("SMIMESYNC_REQUIRE_SERVERS") == "1" {
			t.Fatalf("openssl is required (SMIMESYNC_REQUIRE_SERVERS=1) but not installed: %v", opensslErr)
		}
		t.Logf("openssl not installed: skipping the openssl cross-checks (emails, key usage, key type); %v", opensslErr)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := smimesync.ParseCertificate(tc.pem)
			if tc.name == "individual/legacy/rsa_key_no_param" {
				var pe *smimesync.ParseError
				if !errors.As(err, &pe) || pe.Reason != smimesync.ReasonUnparseable {
					t.Fatalf("err = %v, want a ParseError with reason %s", err, smimesync.ReasonUnparseable)
				}
				if pe.Fingerprint != sha256.Sum256(tc.pem) {
					t.Errorf("Fingerprint = %s, want the SHA-256 of the input", pe.Fingerprint)
				}
				_, err := smimesync.ParseCertificate(tc.der)
				if !errors.As(err, &pe) || pe.Fingerprint != sha256.Sum256(tc.der) {
					t.Errorf("DER input: err = %v, want a ParseError with the DER's fingerprint", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCertificate(PEM): %v", err)
			}
			fromDER, err := smimesync.ParseCertificate(tc.der)
			if err != nil {
				t.Fatalf("ParseCertificate(DER): %v", err)
			}
			if fromDER.SHA256() != c.SHA256() || !slices.Equal(fromDER.Emails, c.Emails) {
				t.Errorf("PEM and DER parses differ")
			}
			x, err := x509.ParseCertificate(tc.der)
			if err != nil {
				t.Fatalf("crypto/x509 refuses it: %v", err)
			}
			if !bytes.Equal(c.Raw, tc.der) || c.SHA256() != sha256.Sum256(tc.der) {
				t.Errorf("Raw/SHA256 do not match the DER")
			}
			if c.Subject() != x.Subject.String() || c.Issuer() != x.Issuer.String() || c.Serial.Cmp(x.SerialNumber) != 0 {
				t.Errorf("Subject/Issuer/Serial = %q/%q/%v, want %q/%q/%v", c.Subject(), c.Issuer(), c.Serial, x.Subject, x.Issuer, x.SerialNumber)
			}
			if !c.NotBefore.Equal(x.NotBefore) || !c.NotAfter.Equal(x.NotAfter) {
				t.Errorf("validity = %v..%v, want %v..%v", c.NotBefore, c.NotAfter, x.NotBefore, x.NotAfter)
			}
			// The SAN rfc822Names come first, the subject's emailAddress
			// values last, whatever else is in between.
			sanEmails := lowerUnique(x.EmailAddresses)
			if len(c.Emails) < len(sanEmails) || !slices.Equal(c.Emails[:len(sanEmails)], sanEmails) {
				t.Errorf("Emails = %q, want to start with the SAN rfc822Names %q", c.Emails, sanEmails)
			}
			for _, e := range lowerUnique(subjectEmails(x)) {
				if !slices.Contains(c.Emails, e) {
					t.Errorf("Emails = %q, missing the subject emailAddress %q", c.Emails, e)
				}
			}
			if strings.Contains(tc.findings, "pkix.subject_email_address_not_in_san") {
				notInSAN := 0
				for _, e := range lowerUnique(subjectEmails(x)) {
					if !slices.Contains(sanEmails, e) {
						notInSAN++
					}
				}
				if notInSAN == 0 {
					t.Errorf("pkilint flags a subject email not in the SAN, but every subject email %q is in the SAN %q", subjectEmails(x), sanEmails)
				}
			}
			if opensslErr != nil {
				return // the independent oracle below needs openssl
			}
			v := opensslText(t, tc.der)
			if want := lowerUnique(v.sanEmails, v.sanSMTPUTF8, subjectEmails(x)); !slices.Equal(c.Emails, want) {
				t.Errorf("Emails = %q, openssl says %q", c.Emails, want)
			}
			wantEnc, wantSign := v.expectedUsage()
			if c.CanEncrypt != wantEnc || c.CanSign != wantSign {
				t.Errorf("CanEncrypt/CanSign = %v/%v, want %v/%v (key %s, KU %q, EKU %q)", c.CanEncrypt, c.CanSign, wantEnc, wantSign, v.keyAlg, v.keyUsage, v.extKeyUsage)
			}
			if c.KeyType != v.expectedKeyType() {
				t.Errorf("KeyType = %q, want %q", c.KeyType, v.expectedKeyType())
			}
			if v.keyBits != 0 && c.KeyBits != v.keyBits {
				t.Errorf("KeyBits = %d, want %d", c.KeyBits, v.keyBits)
			}
			if c.IsCA != v.isCA {
				t.Errorf("IsCA = %v, want %v", c.IsCA, v.isCA)
			}
		})
	}
}

// TestParseCertificateNamed checks hand-verified expectations: each row was
// read off `openssl x509 -text` by a person.
func TestParseCertificateNamed(t *testing.T) {
	const yamada = "山田花子@example.com"
	tests := []struct {
		file               string
		keyType            string
		keyBits            int
		canEncrypt, canSig bool
		emails             []string
	}{
		// RSA; KU digitalSignature, keyEncipherment, dataEncipherment; EKU clientAuth, emailProtection.
		{"pkilint-smime_br/mailbox/strict/prohibited_eku_and_ku.crttest", "RSA", 4096, true, true,
			[]string{"shop@mennysbastelshop.de"}},
		// RSA; same KU; SAN email, UPN otherName, SmtpUTF8Mailbox otherName, dirName.
		{"pkilint-smime_br/individual/multipurpose/rsa_dataencipherment.crttest", "RSA", 2048, true, true,
			[]string{"hanako.yamada@example.com", yamada}},
		// Ed25519; KU digitalSignature only: signs, cannot encrypt.
		{"pkilint-smime_br/organization/strict/ed25519.crttest", "Ed25519", 256, false, true,
			[]string{"hanako.yamada@example.com", yamada}},
		// X25519; KU keyAgreement: encrypts, cannot sign.
		{"pkilint-smime_br/organization/strict/x25519_disallowed.crttest", "X25519", 256, true, false,
			[]string{"hanako.yamada@example.com", yamada}},
		// EC P-256; KU digitalSignature, nonRepudiation, keyAgreement, decipherOnly.
		{"pkilint-smime_br/individual/multipurpose/ecdsa_dual_use.crttest", "ECDSA", 256, true, true,
			[]string{"hanako.yamada@example.com", yamada}},
		// EC P-256 with keyEncipherment (an RSA usage) and no keyAgreement: cannot encrypt.
		{"pkilint-smime_br/mailbox/legacy/invalid_ku_for_ecdsa.crttest", "ECDSA", 256, false, true,
			[]string{"lf.lazzarin@gmail.com"}},
		// EC with decipherOnly but no keyAgreement: cannot encrypt.
		{"pkilint-smime_br/individual/multipurpose/decipheronly_no_keyagreement.crttest", "ECDSA", 256, false, true,
			[]string{"hanako.yamada@example.com", yamada}},
		// ML-KEM-512 with only digitalSignature: a KEM key cannot sign, and keyEncipherment is missing.
		{"pkilint-smime_br/organization/strict/mlkem_bad_ku.crttest", "2.16.840.1.101.3.4.4.1", 0, false, false,
			[]string{"hanako.yamada@example.com", yamada}},
		// SmtpUTF8Mailbox is the only address in the SAN.
		{"pkilint-smime_br/mailbox/multipurpose/smtputf8mailbox_only.crttest", "RSA", 2048, false, true,
			[]string{yamada}},
		{"pkilint-smime_br/mailbox/multipurpose/smtputf8mailbox_only_cn_mismatch.crttest", "RSA", 2048, false, true,
			[]string{yamada}},
		// No SAN at all: the address comes from the subject's emailAddress.
		// KU digitalSignature only.
		{"pkilint-smime_br/individual/legacy/no_san.crttest", "RSA", 2048, false, true,
			[]string{"hanako.yamada@example.com"}},
		// RFC 9216: Alice signs (digitalSignature, nonRepudiation), Bob's
		// encryption certificate has keyEncipherment only, Carlos is
		// Ed25519, Dana's encryption key is X25519 with keyAgreement.
		{"rfc9216/certs/lamps-alice.crt", "RSA", 2048, false, true, []string{"alice@smime.example"}},
		{"rfc9216/certs/lamps-bob.encrypt.crt", "RSA", 2048, true, false, []string{"bob@smime.example"}},
		{"rfc9216/certs/lamps-carlos.crt", "Ed25519", 256, false, true, []string{"carlos@smime.example"}},
		{"rfc9216/certs/lamps-dana.encrypt.crt", "X25519", 256, true, false, []string{"dana@smime.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := smimesync.ParseCertificate(data) // PEM, with pkilint's CSV after it
			if err != nil {
				t.Fatal(err)
			}
			if c.KeyType != tt.keyType || c.KeyBits != tt.keyBits {
				t.Errorf("key = %s/%d, want %s/%d", c.KeyType, c.KeyBits, tt.keyType, tt.keyBits)
			}
			if c.CanEncrypt != tt.canEncrypt || c.CanSign != tt.canSig {
				t.Errorf("CanEncrypt/CanSign = %v/%v, want %v/%v", c.CanEncrypt, c.CanSign, tt.canEncrypt, tt.canSig)
			}
			if !slices.Equal(c.Emails, tt.emails) {
				t.Errorf("Emails = %q, want %q", c.Emails, tt.emails)
			}
			if c.IsCA {
				t.Errorf("IsCA = true for an end-entity certificate")
			}
		})
	}
}

func TestParseCertificateErrors(t *testing.T) {
	alice, err := os.ReadFile("testdata/rfc9216/certs/lamps-alice.crt")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(alice)
	tests := []struct {
		name  string
		value []byte
		is    error
	}{
		{"empty", nil, nil},
		{"garbage", []byte("not a certificate"), nil},
		{"truncated DER", block.Bytes[:len(block.Bytes)/2], nil},
		{"trailing data", append(bytes.Clone(block.Bytes), 0), nil},
		{"PEM of the wrong type", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: block.Bytes}), nil},
		{"malformed PEM", []byte("-----BEGIN CERTIFICATE-----\n!!!\n"), nil},
		{"too large", make([]byte, smimesync.MaxValueSize+1), smimesync.ErrValueTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smimesync.ParseCertificate(tt.value)
			var pe *smimesync.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseCertificate = %v, %v; want a *ParseError", c, err)
			}
			if pe.Reason != smimesync.ReasonUnparseable || pe.Fingerprint != sha256.Sum256(tt.value) {
				t.Errorf("Reason/Fingerprint = %s/%s, want %s and the input's SHA-256", pe.Reason, pe.Fingerprint, smimesync.ReasonUnparseable)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.is)
			}
			if c != nil {
				t.Errorf("Certificate = %v, want nil", c)
			}
		})
	}
}

func TestParseCertificateDoesNotKeepInput(t *testing.T) {
	data, err := os.ReadFile("testdata/rfc9216/certs/lamps-bob.encrypt.crt")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	der := bytes.Clone(block.Bytes)
	c, err := smimesync.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	clear(der)
	if !bytes.Equal(c.Raw, block.Bytes) || c.SHA256() != sha256.Sum256(c.Raw) {
		t.Errorf("Certificate.Raw changed when the caller reused its buffer")
	}
}

func ExampleParseCertificate() {
	value, err := os.ReadFile("testdata/rfc9216/certs/lamps-alice.crt")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := smimesync.ParseCertificate(value)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Subject())
	fmt.Println(c.Emails, c.KeyType, c.KeyBits)
	fmt.Println("encrypt:", c.CanEncrypt, "sign:", c.CanSign)
	// Output:
	// CN=Alice Lovelace,OU=LAMPS WG,O=IETF
	// [alice@smime.example] RSA 2048
	// encrypt: false sign: true
}
