package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/smimesync/go-smimesync/directory"
)

// Real certificates, made with openssl (see directory/testdata/gen.sh).
func testCerts(t *testing.T) (alice, bob, smime []byte) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "directory", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return read("alice.der"), read("bob.der"), read("alice-smime.p7b")
}

func fixedNow() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 678, time.FixedZone("CET", 3600)) }

func newSink(t *testing.T) *FileSink {
	t.Helper()
	return &FileSink{Path: filepath.Join(t.TempDir(), "recipients.json"), Now: fixedNow}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPrimaryAddress(t *testing.T) {
	tests := []struct {
		name string
		e    *directory.Entry
		want string
	}{
		{"mail", &directory.Entry{Mail: " Alice@Example.COM ", ProxyAddresses: []string{"SMTP:other@example.com"}}, "alice@example.com"},
		{"primary proxy", &directory.Entry{ProxyAddresses: []string{"smtp:alias@example.com", "X500:/o=x", "SMTP:Primary@Example.com"}}, "primary@example.com"},
		{"first smtp proxy", &directory.Entry{ProxyAddresses: []string{"X500:/o=x", "smtp:b@example.com", "smtp:a@example.com"}}, "b@example.com"},
		{"no address", &directory.Entry{UserPrincipalName: "upn@corp", ProxyAddresses: []string{"X500:/o=x", "SMTP:"}}, ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrimaryAddress(tt.e); got != tt.want {
				t.Errorf("PrimaryAddress = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFileSinkWriteRead(t *testing.T) {
	ctx := context.Background()
	alice, bob, smime := testCerts(t)
	s := newSink(t)

	r, err := s.Find(ctx, &directory.Entry{DN: "cn=alice", Mail: "Alice@Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	want := &Recipient{ID: "alice@example.com", Name: "alice@example.com", Kind: FileRecipientKind}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("Find (-want +got):\n%s", diff)
	}
	cur, err := s.Current(ctx, r)
	if err != nil || cur.Len() != 0 {
		t.Fatalf("Current of a new recipient = %d values, %v; want none", cur.Len(), err)
	}
	if _, err := os.Stat(s.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file exists before any write: %v", err)
	}

	c := Certificates{UserCertificate: [][]byte{bob, alice}, UserSMIMECertificate: [][]byte{smime}}
	if err := s.Write(ctx, r, c); err != nil {
		t.Fatal(err)
	}
	// A second sink on the same file reads it back: the data is on disk.
	s2 := &FileSink{Path: s.Path}
	got, err := s2.Current(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got, cmpopts.SortSlices(func(a, b []byte) bool { return bytes.Compare(a, b) < 0 })); diff != "" {
		t.Errorf("Current after Write (-want +got):\n%s", diff)
	}
	all, err := s2.Recipients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec := all["alice@example.com"]; !rec.Updated.Equal(time.Date(2025, 1, 2, 2, 4, 5, 0, time.UTC)) || len(all) != 1 {
		t.Errorf("Recipients = %+v; want alice, updated 2025-01-02T02:04:05Z", all)
	}

	fi, err := os.Stat(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	// The document: sorted, base64 values, RFC 3339 time in UTC.
	var doc struct {
		Recipients map[string]map[string]any `json:"recipients"`
	}
	raw := readFile(t, s.Path)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	rec := doc.Recipients["alice@example.com"]
	if rec["updated"] != "2025-01-02T02:04:05Z" {
		t.Errorf("updated = %v, want 2025-01-02T02:04:05Z", rec["updated"])
	}
	ucs, _ := rec["userCertificate"].([]any)
	if len(ucs) != 2 {
		t.Fatalf("userCertificate = %v", rec["userCertificate"])
	}
	first, second := ucs[0].(string), ucs[1].(string)
	if first > second {
		t.Errorf("values not sorted in the file: %.20s… before %.20s…", first, second)
	}
	if !bytes.Contains(raw, []byte(`"MIIDmjCCA`)) {
		t.Errorf("alice's certificate is not in the file as standard base64:\n%s", raw)
	}
}

func TestFileSinkWriteSameSetLeavesFileAlone(t *testing.T) {
	ctx := context.Background()
	alice, bob, _ := testCerts(t)
	s := newSink(t)
	r, err := s.Find(ctx, &directory.Entry{Mail: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{alice, bob}}); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, s.Path)
	s.Now = func() time.Time { return fixedNow().Add(time.Hour) }
	if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{bob, alice}}); err != nil {
		t.Fatal(err)
	}
	if after := readFile(t, s.Path); !bytes.Equal(before, after) {
		t.Errorf("writing the same set again changed the file:\n%s", after)
	}
	// Writing nothing clears the values.
	if err := s.Write(ctx, r, Certificates{}); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Current(ctx, r)
	if err != nil || cur.Len() != 0 {
		t.Errorf("after clearing: %d values, %v", cur.Len(), err)
	}
}

func TestFileSinkNoAddress(t *testing.T) {
	s := newSink(t)
	_, err := s.Find(context.Background(), &directory.Entry{DN: "cn=nomail,dc=example", UserPrincipalName: "x@corp"})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cn=nomail,dc=example") {
		t.Errorf("got %v, want ErrNotFound naming the DN", err)
	}
}

func TestFileSinkReadOnly(t *testing.T) {
	ctx := context.Background()
	alice, _, _ := testCerts(t)
	s := newSink(t)
	const reason = "directory-synced: only Entra Connect may change it"
	doc := fmt.Sprintf(`{"recipients":{"Bob@Example.org":{"readOnly":%q,"userCertificate":["AQID"]}}}`, reason)
	if err := os.WriteFile(s.Path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := s.Find(ctx, &directory.Entry{ProxyAddresses: []string{"SMTP:bob@example.ORG"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.ReadOnly != reason {
		t.Errorf("ReadOnly = %q, want %q", r.ReadOnly, reason)
	}
	cur, err := s.Current(ctx, r)
	if err != nil || len(cur.UserCertificate) != 1 || !bytes.Equal(cur.UserCertificate[0], []byte{1, 2, 3}) {
		t.Errorf("Current = %v, %v; want the file's value 01 02 03", cur, err)
	}
	err = s.Write(ctx, r, Certificates{UserCertificate: [][]byte{alice}})
	var nw *NotWritableError
	if !errors.As(err, &nw) || !errors.Is(err, ErrNotWritable) || nw.Reason != reason || nw.Recipient != "bob@example.org" {
		t.Errorf("Write = %v, want a *NotWritableError for bob@example.org", err)
	}
	if got := readFile(t, s.Path); string(got) != doc {
		t.Errorf("refused write changed the file:\n%s", got)
	}
}

func TestFileSinkBadFile(t *testing.T) {
	tests := map[string]string{
		"empty":             "",
		"not JSON":          "recipients: {}",
		"bad base64":        `{"recipients":{"a@example.com":{"userCertificate":["!!"]}}}`,
		"unknown field":     `{"recipients":{"a@example.com":{"readonly2":"x"}}}`,
		"wrong type":        `{"recipients":[]}`,
		"bad time":          `{"recipients":{"a@example.com":{"updated":"yesterday"}}}`,
		"trailing data":     `{"recipients":{}} {}`,
		"duplicate by case": `{"recipients":{"a@example.com":{},"A@example.com":{}}}`,
	}
	ctx := context.Background()
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			s := newSink(t)
			if err := os.WriteFile(s.Path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := &Recipient{ID: "a@example.com"}
			if _, err := s.Find(ctx, &directory.Entry{Mail: "a@example.com"}); !errors.Is(err, ErrBadFile) {
				t.Errorf("Find: got %v, want ErrBadFile", err)
			}
			if _, err := s.Current(ctx, r); !errors.Is(err, ErrBadFile) {
				t.Errorf("Current: got %v, want ErrBadFile", err)
			}
			if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{{1}}}); !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), s.Path) {
				t.Errorf("Write: got %v, want ErrBadFile naming the file", err)
			}
			if got := readFile(t, s.Path); string(got) != content {
				t.Errorf("the bad file was overwritten:\n%s", got)
			}
		})
	}
}

// TestFileSinkFailedWriteKeepsOldFile makes each step of saving fail in turn
// and checks the old file is intact and no temporary file is left.
func TestFileSinkFailedWriteKeepsOldFile(t *testing.T) {
	ctx := context.Background()
	alice, bob, _ := testCerts(t)
	for _, step := range []string{"create", "write", "sync", "rename"} {
		t.Run(step, func(t *testing.T) {
			s := newSink(t)
			r := &Recipient{ID: "a@example.com"}
			if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{alice}}); err != nil {
				t.Fatal(err)
			}
			before := readFile(t, s.Path)
			boom := errors.New("disk on fire")
			s.failAt = func(at string) error {
				if at == step {
					return boom
				}
				return nil
			}
			err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{bob}})
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "a@example.com") {
				t.Errorf("Write = %v, want the step's error naming the recipient", err)
			}
			if after := readFile(t, s.Path); !bytes.Equal(before, after) {
				t.Errorf("a failed write changed the file:\n%s", after)
			}
			ents, err := os.ReadDir(filepath.Dir(s.Path))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 {
				t.Errorf("directory holds %d files after a failed write, want only the document", len(ents))
			}
		})
	}
}

func TestFileSinkReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: a read-only directory does not stop root (TestFileSinkFailedWriteKeepsOldFile covers failed writes)")
	}
	ctx := context.Background()
	s := newSink(t)
	r := &Recipient{ID: "a@example.com"}
	if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{{1}}}); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, s.Path)
	dir := filepath.Dir(s.Path)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{{2}}}); err == nil {
		t.Error("Write into a read-only directory: no error")
	}
	if after := readFile(t, s.Path); !bytes.Equal(before, after) {
		t.Errorf("a failed write changed the file:\n%s", after)
	}
}

// TestFileSinkConcurrent writes from many goroutines while another reads the
// raw file: every read sees a complete document, and no write is lost.
func TestFileSinkConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newSink(t)
	const writers, rounds = 8, 15
	stop := make(chan struct{})
	var readerErr error
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(s.Path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil || !json.Valid(b) {
				readerErr = fmt.Errorf("reader saw %d bytes, valid JSON %v, err %v", len(b), json.Valid(b), err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Recipient{ID: fmt.Sprintf("user%d@example.com", w)}
			shared := &Recipient{ID: "shared@example.com"}
			for i := range rounds {
				if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{{byte(w), byte(i)}}}); err != nil {
					t.Error(err)
					return
				}
				if err := s.Write(ctx, shared, Certificates{UserSMIMECertificate: [][]byte{{byte(w), byte(i)}}}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Current(ctx, shared); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	all, err := s.Recipients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers+1 {
		t.Errorf("%d recipients in the file, want %d", len(all), writers+1)
	}
	for w := range writers {
		got := all[fmt.Sprintf("user%d@example.com", w)].UserCertificate
		if len(got) != 1 || !bytes.Equal(got[0], []byte{byte(w), rounds - 1}) {
			t.Errorf("user%d carries %v, want its last write [%d %d]", w, got, w, rounds-1)
		}
	}
	if sh := all["shared@example.com"].UserSMIMECertificate; len(sh) != 1 || sh[0][1] != rounds-1 {
		t.Errorf("shared carries %v, want one value from a last round", sh)
	}
}

func TestFileSinkContextAndConfig(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := newSink(t)
	r := &Recipient{ID: "a@example.com"}
	if _, err := s.Find(ctx, &directory.Entry{Mail: "a@example.com"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Find: got %v, want context.Canceled", err)
	}
	if err := s.Write(ctx, r, Certificates{UserCertificate: [][]byte{{1}}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Write: got %v, want context.Canceled", err)
	}
	if _, err := os.Stat(s.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cancelled Write created the file")
	}
	var zero FileSink
	if _, err := zero.Current(context.Background(), r); err == nil || !strings.Contains(err.Error(), "no Path") {
		t.Errorf("zero FileSink: got %v, want an error saying it has no Path", err)
	}
	if err := s.Write(context.Background(), nil, Certificates{}); err == nil {
		t.Error("Write(nil recipient): no error")
	}
	if _, err := s.Find(context.Background(), nil); err == nil {
		t.Error("Find(nil entry): no error")
	}
}

// TestFileSinkMissingFile: a sink whose file does not exist yet finds
// every recipient with nothing published, then sees the file once another
// writer creates it; a path that cannot be read for another reason (its
// folder is a file) is an error, not an empty sink.
func TestFileSinkMissingFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sink.json")
	s := &FileSink{Path: path}
	e := &directory.Entry{DN: "CN=a", Mail: "a@example.com"}
	for range 2 {
		r, err := s.Find(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := s.Current(ctx, r); err != nil || len(c.UserCertificate)+len(c.UserSMIMECertificate) != 0 {
			t.Fatalf("current %v, %v", c, err)
		}
	}
	other := &FileSink{Path: path}
	r, _ := other.Find(ctx, e)
	if err := other.Write(ctx, r, Certificates{UserCertificate: [][]byte{[]byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Current(ctx, r); err != nil || len(c.UserCertificate) != 1 {
		t.Fatalf("after another writer: current %v, %v", c, err)
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&FileSink{Path: filepath.Join(notDir, "sink.json")}).Find(ctx, e); err == nil {
		t.Error("a sink under a regular file: no error")
	}
}

// BenchmarkFileSinkMissingFile is a plan's lookups (Find, then Current)
// against a file sink whose file does not exist yet: smimesync plan into
// a new file.
func BenchmarkFileSinkMissingFile(b *testing.B) {
	ctx := context.Background()
	s := &FileSink{Path: filepath.Join(b.TempDir(), "sink.json")}
	e := &directory.Entry{DN: "CN=a", Mail: "a@example.com"}
	for b.Loop() {
		r, err := s.Find(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Current(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
