package directory_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/directory"
)

// The vector is Microsoft's documented example GUID
// {3F2504E0-4F89-11D3-9A0C-0305E82C3301}, whose in-memory (and AD objectGUID)
// bytes store the first three fields little-endian.
var guidVectors = []struct {
	s string
	b []byte
}{
	{"3f2504e0-4f89-11d3-9a0c-0305e82c3301", []byte{0xe0, 0x04, 0x25, 0x3f, 0x89, 0x4f, 0xd3, 0x11, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01}},
	{"04030201-0605-0807-090a-0b0c0d0e0f10", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
	{"00000000-0000-0000-0000-000000000000", make([]byte, 16)},
	{"ffffffff-ffff-ffff-ffff-ffffffffffff", bytes.Repeat([]byte{0xff}, 16)},
}

func TestFormatGUID(t *testing.T) {
	for _, v := range guidVectors {
		got, err := directory.FormatGUID(v.b)
		if err != nil || got != v.s {
			t.Errorf("FormatGUID(% x) = %q, %v; want %q", v.b, got, err, v.s)
		}
	}
	for _, n := range []int{0, 15, 17, 32} {
		if _, err := directory.FormatGUID(make([]byte, n)); err == nil {
			t.Errorf("FormatGUID of %d bytes: no error", n)
		}
	}
}

func TestParseGUID(t *testing.T) {
	for _, v := range guidVectors {
		for _, s := range []string{v.s, strings.ToUpper(v.s), "{" + v.s + "}", "{" + strings.ToUpper(v.s) + "}"} {
			got, err := directory.ParseGUID(s)
			if err != nil || !bytes.Equal(got, v.b) {
				t.Errorf("ParseGUID(%q) = % x, %v; want % x", s, got, err, v.b)
			}
		}
	}
	bad := []string{
		"",
		"3f2504e0-4f89-11d3-9a0c-0305e82c330",    // short
		"3f2504e0-4f89-11d3-9a0c-0305e82c33011",  // long
		"3f2504e04f89-11d3-9a0c-0305e82c3301-",   // dash misplaced
		"3f2504e0-4f89-11d3-9a0c-0305e82c33zz",   // not hex
		"{3f2504e0-4f89-11d3-9a0c-0305e82c3301",  // one brace
		"(3f2504e0-4f89-11d3-9a0c-0305e82c3301)", // wrong brackets
		"3f2504e0-4f89-11d3-9a0c-0305e82c3301}}",
		"+f2504e0-4f89-11d3-9a0c-0305e82c3301",
	}
	for _, s := range bad {
		if b, err := directory.ParseGUID(s); err == nil {
			t.Errorf("ParseGUID(%q) = % x, want an error", s, b)
		} else if !strings.Contains(err.Error(), s) {
			t.Errorf("ParseGUID(%q): error %q does not quote the input", s, err)
		}
	}
}

// FuzzGUID checks that FormatGUID and ParseGUID are inverse.
func FuzzGUID(f *testing.F) {
	for _, v := range guidVectors {
		f.Add(v.b, v.s)
	}
	f.Fuzz(func(t *testing.T, b []byte, s string) {
		if len(b) == 16 {
			str, err := directory.FormatGUID(b)
			if err != nil {
				t.Fatal(err)
			}
			back, err := directory.ParseGUID(str)
			if err != nil || !bytes.Equal(back, b) {
				t.Fatalf("ParseGUID(FormatGUID(% x)) = % x, %v", b, back, err)
			}
		}
		p, err := directory.ParseGUID(s)
		if err != nil {
			return
		}
		str, err := directory.FormatGUID(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")); str != want {
			t.Fatalf("FormatGUID(ParseGUID(%q)) = %q, want %q", s, str, want)
		}
	})
}
