package revocation

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

// BenchmarkCheckCached is the cost of a Check answered from the cache.
func BenchmarkCheckCached(b *testing.B) {
	p := newPKI(b)
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
	leaf := p.leaf([]string{"direct"}, nil)
	ctx := context.Background()
	if st, err := c.Check(ctx, leaf, p.ca.cert); st != good {
		b.Fatal(st, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if st, _ := c.Check(ctx, leaf, p.ca.cert); st != good {
			b.Fatal(st)
		}
	}
}

// BenchmarkParseCRL100k is the cost of loading a CRL of 100,000 entries
// (about 3.5 MB): parse, verify, index.
func BenchmarkParseCRL100k(b *testing.B) {
	p := newPKI(b)
	now := p.clock.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour)}
	for i := range 100_000 {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: new(big.Int).Lsh(big.NewInt(int64(i)+1), 100), RevocationTime: now.Add(-time.Hour), ReasonCode: 1,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.ca.cert, p.ca.key)
	if err != nil {
		b.Fatal(err)
	}
	c := &Checker{AllowHosts: testAllowHosts, Now: p.clock.Now}
	b.SetBytes(int64(len(der)))
	b.ReportAllocs()
	for b.Loop() {
		info, err := c.parseCRL(der, p.ca.cert)
		if err != nil || len(info.revoked) != 100_000 {
			b.Fatal(err)
		}
	}
}
