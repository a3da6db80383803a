package ber

import (
	"bytes"
	"encoding/asn1"
	"testing"
)

func TestIndefinite(t *testing.T) {
	der, err := asn1.Marshal(struct {
		A int
		B struct{ C []byte }
	}{A: 1, B: struct{ C []byte }{C: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Indefinite(der, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x30, 0x80, 0x02, 0x01, 0x01, 0x30, 0x80, 0x04, 0x01, 'x', 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("Indefinite = % x, want % x", got, want)
	}
	if _, err := Indefinite(append(der, 0), 1); err == nil {
		t.Error("trailing data accepted")
	}
}
