package smimesync

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
)

// TestUnlistedKeys: the keys, kept by their first byte, answer has for
// every key added and no other, come out of bytes in order, and read
// back from it (unlistedFrom) as they were; keys out of order are
// refused.
func TestUnlistedKeys(t *testing.T) {
	u := &unlisted{}
	const n = 5000
	for i := range n {
		u.add(&Change{ID: "id-" + strconv.Itoa(i), Source: "ad"})
	}
	if u.has(stateKey("ad", "id-1")) {
		t.Errorf("has answers before seal")
	}
	u.seal()
	b := u.bytes()
	if u.len() != n || len(b) != n*len(keyHash{}) {
		t.Fatalf("%d keys, %d bytes; want %d keys", u.len(), len(b), n)
	}
	for i := len(keyHash{}); i < len(b); i += len(keyHash{}) {
		if bytes.Compare(b[i-len(keyHash{}):i], b[i:i+len(keyHash{})]) > 0 {
			t.Fatalf("bytes are out of order at key %d", i/len(keyHash{}))
		}
	}
	back, err := unlistedFrom(b, u.counts)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*unlisted{u, back} {
		for i := range n {
			if !v.has(stateKey("ad", "id-"+strconv.Itoa(i))) {
				t.Fatalf("id-%d is not unlisted", i)
			}
		}
		if v.has(stateKey("ad", "id-"+strconv.Itoa(n))) || v.has("id-1") {
			t.Errorf("a key never added is unlisted")
		}
	}
	if back.len() != n || !bytes.Equal(back.bytes(), b) || back.counts.Unchanged != n {
		t.Errorf("read back: %d keys, counts %+v", back.len(), back.counts)
	}
	swapped := bytes.Clone(b)
	copy(swapped, b[len(keyHash{}):2*len(keyHash{})])
	copy(swapped[len(keyHash{}):], b[:len(keyHash{})])
	if _, err := unlistedFrom(swapped, u.counts); !errors.Is(err, errUnlistedKeys) {
		t.Errorf("keys out of order: %v, want errUnlistedKeys", err)
	}
}

// TestUnlistedDigests: a plan's UnlistedDigests yields the EntryDigest of
// every unlisted entry once, in ascending byte order across the key lists
// (the report store walks its records against them in that order).
func TestUnlistedDigests(t *testing.T) {
	u := &unlisted{}
	const n = 3000
	for i := range n {
		u.add(&Change{ID: "id-" + strconv.Itoa(i), Source: "ad"})
	}
	p := &Plan{unlisted: u}
	for range p.UnlistedDigests() {
		t.Fatal("UnlistedDigests yields before the read ended (seal)")
	}
	u.seal()
	want := map[EntryDigest]bool{}
	for i := range n {
		want[DigestEntry("ad", "id-"+strconv.Itoa(i))] = true
	}
	var last EntryDigest
	got := 0
	for d := range p.UnlistedDigests() {
		if got > 0 && bytes.Compare(last[:], d[:]) >= 0 {
			t.Fatalf("digest %d is not above the one before", got)
		}
		if !want[d] {
			t.Fatalf("digest %x is no unlisted entry's", d)
		}
		last = d
		got++
	}
	if got != n {
		t.Errorf("%d digests, want %d", got, n)
	}
}
