package termsafe

import (
	"errors"
	"testing"
)

func TestString(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{`cn=Smith\, John,dc=example`, `cn=Smith\, John,dc=example`},
		{"Zoë Ångström 日本", "Zoë Ångström 日本"},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"a\tb\rc\nd", `a\tb\rc\nd`},
		{"x\u202ey", `x\u202ey`},
		{"x\u200by", `x\u200by`},
		{"x\xffy", `x\xffy`},
		{"\x00", `\x00`},
	} {
		if got := String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := String(Hostile); Unsafe(got) != "" || String(got) != got {
		t.Errorf("String(Hostile) = %q", got)
	}
	if got := All([]string{"a\x1b", "b"}); len(got) != 2 || got[0] != `a\x1b` || got[1] != "b" {
		t.Errorf("All = %q", got)
	}
}

// TestErrWriter: the first error is kept, and nothing is written after it.
func TestErrWriter(t *testing.T) {
	f := &failAfter{n: 1}
	ew := &ErrWriter{W: f}
	for range 3 {
		ew.Write([]byte("x"))
	}
	if ew.Err != errFull || f.writes != 2 {
		t.Errorf("err %v after %d writes, want errFull after 2", ew.Err, f.writes)
	}
}

var errFull = errors.New("full")

// failAfter fails every write after the first n.
type failAfter struct{ n, writes int }

func (f *failAfter) Write(b []byte) (int, error) {
	f.writes++
	if f.writes > f.n {
		return 0, errFull
	}
	return len(b), nil
}
