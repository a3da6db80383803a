package smimesync_test

import (
	"crypto/x509"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// benchCertificates returns the DER of every pkilint certificate that
// crypto/x509 accepts (96 of 97).
func benchCertificates(b *testing.B) [][]byte {
	b.Helper()
	var ders [][]byte
	for _, tc := range loadPKILint(b) {
		if _, err := x509.ParseCertificate(tc.der); err == nil {
			ders = append(ders, tc.der)
		}
	}
	return ders
}

// BenchmarkParseCertificate parses the whole pkilint set once per
// iteration; compare with BenchmarkX509ParseCertificate for the cost of
// what smimesync adds (copy, fingerprint, SAN walk, usage).
func BenchmarkParseCertificate(b *testing.B) {
	ders := benchCertificates(b)
	for b.Loop() {
		for _, der := range ders {
			if _, err := smimesync.ParseCertificate(der); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ders)), "ns/cert")
}

func BenchmarkX509ParseCertificate(b *testing.B) {
	ders := benchCertificates(b)
	for b.Loop() {
		for _, der := range ders {
			if _, err := x509.ParseCertificate(der); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ders)), "ns/cert")
}

// benchBlob makes a signed blob (user and CA certificates) with openssl.
func benchBlob(b *testing.B, args []string) []byte {
	b.Helper()
	opensslBinary(b)
	dir := loadPKI(b).writeFiles(b)
	return opensslBlob(b, dir, args...)
}

func benchmarkBlob(b *testing.B, value []byte, wantBER bool) {
	blob, err := smimesync.ParseSMIMECertificate(value)
	if err != nil {
		b.Fatal(err)
	}
	if blob.BER != wantBER || !blob.Verified || len(blob.Certificates) != 2 {
		b.Fatalf("BER/Verified/certificates = %v/%v/%d", blob.BER, blob.Verified, len(blob.Certificates))
	}
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := smimesync.ParseSMIMECertificate(value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSMIMECertificateDER and BenchmarkParseSMIMECertificateBER
// parse and verify the same certificates and signer, written by
// `openssl cms -sign` as DER and with -stream as BER.
func BenchmarkParseSMIMECertificateDER(b *testing.B) {
	benchmarkBlob(b, benchBlob(b, signArgs), false)
}

func BenchmarkParseSMIMECertificateBER(b *testing.B) {
	benchmarkBlob(b, benchBlob(b, streamArgs), true)
}
