package smimesync_test

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

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
	cpu := processCPU()
	for b.Loop() {
		for _, der := range ders {
			if _, err := smimesync.ParseCertificate(der); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ders)), "ns/cert")
	reportCPU(b, cpu, len(ders))
}

func BenchmarkX509ParseCertificate(b *testing.B) {
	ders := benchCertificates(b)
	cpu := processCPU()
	for b.Loop() {
		for _, der := range ders {
			if _, err := x509.ParseCertificate(der); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ders)), "ns/cert")
	reportCPU(b, cpu, len(ders))
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

// BenchmarkParseCertificateRatio alternates the two parsers, one pass over
// the pkilint set each, and reports the median of the passes' ratios
// ("x509-ratio": smimesync.ParseCertificate / x509.ParseCertificate). On a
// shared machine, whose load changes from second to second, two passes a
// few milliseconds apart see the same load, and the median drops the pairs
// a burst of load (or a garbage collection) fell into; which parser goes
// first alternates. The ratio is steadier than that of the two benchmarks
// above, which run seconds apart. "x509-cpu-ratio" is the ratio of the
// process CPU time (every thread: the garbage collector's work counts)
// spent in the passes of each, which time spent waiting for a core does
// not inflate.
func BenchmarkParseCertificateRatio(b *testing.B) {
	ders := benchCertificates(b)
	var cpuOurs, cpuTheirs time.Duration
	pass := func(parse func([]byte) error, cpu *time.Duration) time.Duration {
		start, cpuStart := time.Now(), processCPU()
		for _, der := range ders {
			if err := parse(der); err != nil {
				b.Fatal(err)
			}
		}
		*cpu += processCPU() - cpuStart
		return time.Since(start)
	}
	ours := func(der []byte) error { _, err := smimesync.ParseCertificate(der); return err }
	theirs := func(der []byte) error { _, err := x509.ParseCertificate(der); return err }
	var ratios []float64
	for b.Loop() {
		var o, t time.Duration
		if len(ratios)%2 == 0 {
			t, o = pass(theirs, &cpuTheirs), pass(ours, &cpuOurs)
		} else {
			o, t = pass(ours, &cpuOurs), pass(theirs, &cpuTheirs)
		}
		ratios = append(ratios, float64(o)/float64(t))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "x509-ratio")
	if cpuTheirs > 0 {
		b.ReportMetric(float64(cpuOurs)/float64(cpuTheirs), "x509-cpu-ratio")
	}
}
