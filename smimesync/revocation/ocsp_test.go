package revocation

import (
	"crypto/sha1"
	"errors"
	"testing"
)

func TestParseCertIDs(t *testing.T) {
	p := newPKI(t)
	leaf := p.leaf([]string{"direct"}, nil)
	der := p.makeOCSP(leaf.SerialNumber, "direct")
	ids, err := parseCertIDs(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0].serial.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("ids = %+v", ids)
	}
	nameHash := sha1.Sum(p.ca.cert.RawSubject)
	if string(ids[0].nameHash) != string(nameHash[:]) {
		t.Fatalf("name hash %x, want %x", ids[0].nameHash, nameHash)
	}
	if err := matchCertID(der, leaf, p.ca.cert); err != nil {
		t.Fatalf("matchCertID: %v", err)
	}
	if err := matchCertID(der, leaf, p.otherCA.cert); !errors.Is(err, ErrMalformed) {
		t.Fatalf("matchCertID with another issuer: %v", err)
	}
	// Every truncation is an error, never a panic.
	for i := range der {
		if _, err := parseCertIDs(der[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
}
