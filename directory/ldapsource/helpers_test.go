package ldapsource_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// servers returns the servers a test runs against, by name.
func servers() []struct {
	name  string
	start func(testing.TB) *ldaptest.Server
} {
	return []struct {
		name  string
		start func(testing.TB) *ldaptest.Server
	}{{"samba", ldaptest.Samba}, {"slapd", ldaptest.Slapd}}
}

// adminConfig returns a config reading base as the administrator over
// StartTLS.
func adminConfig(srv *ldaptest.Server, base string) ldapsource.Config {
	return ldapsource.Config{
		URL:    srv.URL,
		CAFile: srv.CAFile,
		Bind:   ldapsource.Bind{User: srv.AdminDN, Password: srv.AdminPassword},
		BaseDN: ldapsource.StringList{base},
	}
}

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLogger logs to the buffer and, with -v, to the test log.
func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	h := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), buf
}

func newSource(t testing.TB, cfg ldapsource.Config) (*ldapsource.Source, *logBuffer) {
	t.Helper()
	logger, buf := testLogger(t)
	s, err := ldapsource.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() || os.Getenv("LDAPSOURCE_TEST_LOG") != "" {
			t.Logf("source log:\n%s", buf)
		}
	})
	return s, buf
}

// readAll runs one pass and returns the entries by DN (lower-cased) and
// the result.
func readAll(t testing.TB, s *ldapsource.Source, cookie []byte) (map[string]*directory.Entry, directory.Result) {
	t.Helper()
	got := map[string]*directory.Entry{}
	res, err := s.Read(context.Background(), directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
		key := e.ID
		if prev, dup := got[key]; dup {
			return fmt.Errorf("entry %s (%s) yielded twice (first as %+v)", e.ID, e.DN, prev)
		}
		got[key] = e
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got, res
}

func sortedValues(vs [][]byte) [][]byte {
	out := append([][]byte(nil), vs...)
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}

// sameValues reports whether a and b hold the same values in any order.
func sameValues(a, b [][]byte) bool {
	return slices.EqualFunc(sortedValues(a), sortedValues(b), bytes.Equal)
}

// makeUsers returns n users named prefix0000… with two certificates each
// and, for every third, a userSMIMECertificate blob.
func makeUsers(t testing.TB, prefix string, n int) []ldaptest.UserSpec {
	t.Helper()
	ca, err := ldaptest.UserCA()
	if err != nil {
		t.Fatal(err)
	}
	users := make([]ldaptest.UserSpec, n)
	for i := range users {
		name := fmt.Sprintf("%s%05d", prefix, i)
		mail := name + "@smimesync.test"
		certs, err := ldaptest.UserCerts(mail, 2)
		if err != nil {
			t.Fatal(err)
		}
		users[i] = ldaptest.UserSpec{Name: name, Mail: mail, UserCertificate: certs}
		if i%3 == 0 {
			blob, err := ca.SMIMEBlob(certs[0])
			if err != nil {
				t.Fatal(err)
			}
			users[i].UserSMIMECertificate = [][]byte{blob}
		}
	}
	return users
}
