package directory_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/directory"
)

// FuzzReadLDIF checks that ReadLDIF never panics, that every error it gives
// for an in-memory input is an *LDIFError, and that whatever it reads,
// WriteLDIF writes so that ReadLDIF reads it back equal.
func FuzzReadLDIF(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.ldif"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("dn: cn=a\nobjectGUID: {3F2504E0-4F89-11D3-9A0C-0305E82C3301}\nentryUUID: x\n"))
	f.Add([]byte("dn:: \nentryUUID:\nmail:\nmail: b\nuserPrincipalName::\nisDeleted: true\n"))
	f.Add([]byte("\r\n\r\ndn: a\r\n b\r\n#c\r\n d\r\nmail: \r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var got []*directory.Entry
		err := directory.ReadLDIF(context.Background(), bytes.NewReader(in), func(e *directory.Entry) error {
			got = append(got, e)
			return nil
		})
		var le *directory.LDIFError
		if err != nil && !errors.As(err, &le) {
			t.Fatalf("error %v (%T) is not an *LDIFError", err, err)
		}
		if len(got) == 0 {
			return
		}
		var buf bytes.Buffer
		if err := directory.WriteLDIF(&buf, got...); err != nil {
			t.Fatal(err)
		}
		var back []*directory.Entry
		if err := directory.ReadLDIF(context.Background(), &buf, func(e *directory.Entry) error {
			back = append(back, e)
			return nil
		}); err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if diff := cmp.Diff(got, back); diff != "" {
			t.Fatalf("round trip differs (-read +read back):\n%s", diff)
		}
	})
}
