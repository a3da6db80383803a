package check

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestStateAndSource: a store whose lock another instance holds fails
// with the fix that names it; a free one passes; an LDIF file that parses
// passes with its count, a broken one fails; Report says OK only when
// nothing failed.
func TestStateAndSource(t *testing.T) {
	dir := t.TempDir()
	held := &smimesync.BoltState{Path: filepath.Join(dir, "held.db")}
	unlock, err := held.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	var c Checker
	c.Part = PartConfig
	c.State(&smimesync.BoltState{Path: filepath.Join(dir, "free.db")})
	if c.Failed() != 0 || !c.Report().OK {
		t.Fatalf("a free store: %+v", c.Results)
	}
	c.State(&smimesync.BoltState{Path: held.Path})
	last := c.Results[len(c.Results)-1]
	if last.OK || !strings.Contains(last.Fix, "another smimesync") || last.Part != PartConfig {
		t.Errorf("a held lock: %+v", last)
	}

	good := filepath.Join(dir, "good.ldif")
	bad := filepath.Join(dir, "bad.ldif")
	os.WriteFile(good, []byte("dn: cn=a,dc=example\nmail: a@example.com\n\n"), 0o600)
	os.WriteFile(bad, []byte("dn: cn=a,dc=example\nmail:: !!notbase64\n\n"), 0o600)
	c = Checker{Part: PartDirectory}
	c.Source(context.Background(), "", &directory.LDIFFile{Path: good})
	if c.Failed() != 0 || !strings.Contains(c.Results[0].Detail, "1 entries") {
		t.Errorf("good LDIF: %+v", c.Results)
	}
	c.Source(context.Background(), "", &directory.LDIFFile{Path: bad})
	c.PolicyFile("policy.roots[0]", "roots.pem", nil, errors.New("no such file"))
	if c.Failed() != 2 || c.Report().OK {
		t.Errorf("bad LDIF and a missing policy file: %+v", c.Results)
	}
}
