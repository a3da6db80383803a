package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/directory"
)

// TestWrite: the folder holds the LDIF (reading back every user), the
// tenant in the file sink's format, and the configuration.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	d, err := Write(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Entries) == 0 || len(d.Stories) != len(d.Entries) {
		t.Fatalf("%d entries, %d stories", len(d.Entries), len(d.Stories))
	}
	f, err := os.Open(filepath.Join(dir, LDIFFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	if err := directory.ReadLDIF(context.Background(), f, func(*directory.Entry) error { n++; return nil }); err != nil || n != len(d.Entries) {
		t.Errorf("LDIF: %d entries read back, %v; want %d", n, err, len(d.Entries))
	}
	b, err := os.ReadFile(filepath.Join(dir, TenantFile))
	var tenant struct{ Recipients map[string]json.RawMessage }
	if err != nil || json.Unmarshal(b, &tenant) != nil || len(tenant.Recipients) != 2 {
		t.Errorf("tenant %s: %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ConfigFile)); err != nil || string(b) != Config {
		t.Errorf("config %q: %v", b, err)
	}
}

// TestWriteIntro: the count, one line per story, and every line of the
// configuration indented by four spaces.
func TestWriteIntro(t *testing.T) {
	d, err := New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := d.WriteIntro(&b, "/tmp/demo"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("smimesync demo: %d directory users made at run time in /tmp/demo\n\n", len(d.Entries))
	for _, st := range d.Stories {
		want += "  " + st + "\n"
	}
	want += "\n  users.ldif (the directory), published.json (the tenant), smimesync.yaml:\n\n"
	for _, line := range strings.Split(strings.TrimSuffix(Config, "\n"), "\n") {
		want += "    " + line + "\n"
	}
	if got := b.String(); got != want+"\n" {
		t.Errorf("got\n%s\nwant\n%s", got, want+"\n")
	}
}
