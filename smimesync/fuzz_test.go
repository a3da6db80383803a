package smimesync

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFiles returns the test data the fuzzers start from: the CMS objects,
// and every certificate as DER (and as PEM for the certificate fuzzer).
func seedFiles(tb testing.TB) (cms, certs [][]byte) {
	tb.Helper()
	files, _ := filepath.Glob("testdata/rfc9216/cms-der/*.p7m")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		cms = append(cms, b)
	}
	var pems []string
	more, _ := filepath.Glob("testdata/rfc9216/certs/*.crt")
	pems = append(pems, more...)
	err := filepath.WalkDir("testdata/pkilint-smime_br", func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".crttest") {
			pems = append(pems, path)
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range pems {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if block, _ := pem.Decode(b); block != nil {
			certs = append(certs, block.Bytes)
		}
	}
	if len(cms) == 0 || len(certs) == 0 {
		tb.Fatal("no seed files found")
	}
	return cms, certs
}

func FuzzParseCertificate(f *testing.F) {
	_, certs := seedFiles(f)
	for _, c := range certs {
		f.Add(c)
	}
	pemAlice, _ := os.ReadFile("testdata/rfc9216/certs/lamps-alice.crt")
	f.Add(pemAlice)
	f.Fuzz(func(t *testing.T, value []byte) {
		c, err := ParseCertificate(value)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason != ReasonUnparseable || pe.Fingerprint != sha256.Sum256(value) || c != nil {
				t.Fatalf("error %v (%T), certificate %v: want a ParseError with the value's fingerprint", err, err, c)
			}
			return
		}
		if c.X509 == nil || !bytes.Equal(c.X509.Raw, c.Raw) {
			t.Fatal("Raw and X509 disagree")
		}
		if value[0] == 0x30 && !bytes.Equal(c.Raw, value) {
			t.Fatal("Raw is not the DER value given")
		}
		if c.Serial == nil || c.Serial != c.X509.SerialNumber || !c.NotBefore.Equal(c.X509.NotBefore) {
			t.Fatal("fields disagree with crypto/x509")
		}
		// crypto/x509 accepts every certificate ParseCertificate accepts,
		// except one whose curve it does not implement; that one has no
		// key in X509 and says so.
		_, xerr := x509.ParseCertificate(c.Raw)
		switch {
		case c.KeyUnsupported && (xerr == nil || xerr.Error() != "x509: unsupported elliptic curve" || c.X509.PublicKey != nil || c.KeyCurve == ""):
			t.Fatalf("KeyUnsupported, curve %q, but crypto/x509 says %v", c.KeyCurve, xerr)
		case !c.KeyUnsupported && xerr != nil:
			t.Fatalf("accepted a certificate crypto/x509 refuses: %v", xerr)
		}
		seen := map[string]bool{}
		for _, e := range c.Emails {
			if e == "" || seen[e] || strings.ToLower(e) != e {
				t.Fatalf("Emails %q: empty, duplicate or not lower-case", c.Emails)
			}
			seen[e] = true
		}
	})
}

func FuzzParseSMIMECertificate(f *testing.F) {
	cms, certs := seedFiles(f)
	for _, b := range cms {
		f.Add(b)
	}
	f.Add([]byte{0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00})
	// A certificates-only SignedData around one certificate, in DER and
	// in BER with indefinite lengths.
	set := derTLV(0xa0, certs[0])
	data := []byte{0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01}
	sd := derTLV(0x30, []byte{0x02, 0x01, 0x01}, []byte{0x31, 0x00}, data, set, []byte{0x31, 0x00})
	f.Add(derTLV(0x30, encodedOIDSignedData, derTLV(0xa0, sd)))
	ber := []byte{0x30, 0x80}
	ber = append(ber, encodedOIDSignedData...)
	ber = append(ber, 0xa0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0x31, 0x00)
	ber = append(ber, data...)
	ber = append(ber, 0xa0, 0x80)
	ber = append(ber, certs[0]...)
	ber = append(ber, 0x00, 0x00, 0x31, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)
	f.Add(ber)
	f.Fuzz(func(t *testing.T, value []byte) {
		b, err := ParseSMIMECertificate(value)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Fingerprint != sha256.Sum256(value) || b != nil {
				t.Fatalf("error %v (%T), blob %v: want a ParseError with the value's fingerprint", err, err, b)
			}
			switch pe.Reason {
			case ReasonUnparseable, ReasonSecuritySettings, ReasonWrongContentType, ReasonNoCertificates:
			default:
				t.Fatalf("unexpected reason %s", pe.Reason)
			}
			return
		}
		if !bytes.Equal(b.Raw, value) || b.SHA256 != sha256.Sum256(value) {
			t.Fatal("Raw/SHA256 do not match the value")
		}
		if _, changed, err := berToDER(value); err != nil || changed != b.BER {
			t.Fatalf("BER = %v, but the converter says changed=%v err=%v", b.BER, changed, err)
		}
		if len(b.Certificates) == 0 {
			t.Fatal("a Blob without certificates")
		}
		for _, c := range b.Certificates {
			if c.X509 == nil || !bytes.Equal(c.X509.Raw, c.Raw) {
				t.Fatal("certificate Raw and X509 disagree")
			}
		}
		for _, r := range b.Rejected {
			var ce *CertificateError
			if !errors.As(r, &ce) {
				t.Fatalf("Rejected holds %T", r)
			}
		}
		if b.Verified && (b.VerifyError != nil || len(b.Signers) == 0) {
			t.Fatal("Verified with an error or without signers")
		}
		if b.VerifyError != nil && errors.Is(b.VerifyError, ErrSignatureInvalid) == errors.Is(b.VerifyError, ErrCannotVerify) {
			t.Fatalf("VerifyError %v wraps both or neither of ErrSignatureInvalid, ErrCannotVerify", b.VerifyError)
		}
		for _, s := range b.Signers {
			if s.Certificate == nil {
				continue
			}
			found := false
			for _, c := range b.Certificates {
				found = found || c == s.Certificate
			}
			if !found {
				t.Fatal("a signer links to a certificate outside the blob")
			}
		}
	})
}

func FuzzBERToDER(f *testing.F) {
	cms, certs := seedFiles(f)
	for _, b := range cms {
		f.Add(b)
	}
	f.Add(certs[0])
	for _, s := range []string{
		"3080020105 0000", "2480040261620401630000", "23800302000a030204f00000",
		"3080318002010100 00a0800000 0000", "048103616263", "bf8100800201010000", "2c80040161 0c01620000",
	} {
		b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changed, err := berToDER(in)
		if err != nil {
			var be *berError
			if !errors.As(err, &be) || be.Offset < 0 || be.Offset > len(in) {
				t.Fatalf("error %v (%T): want a berError with an offset inside the input", err, err)
			}
			return
		}
		if !changed && !bytes.Equal(out, in) {
			t.Fatal("unchanged, yet the output differs")
		}
		again, changed2, err := berToDER(out)
		if err != nil || changed2 || !bytes.Equal(again, out) {
			t.Fatalf("converting the output again: changed=%v err=%v; want the identity", changed2, err)
		}
		var rv asn1.RawValue
		if rest, err := asn1.Unmarshal(out, &rv); err != nil || len(rest) > 0 {
			t.Fatalf("encoding/asn1 refuses the output % x: %v", out, err)
		}
	})
}
