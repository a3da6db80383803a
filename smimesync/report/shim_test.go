package report

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// storeOf is a new store holding f (imported as a JSON report is).
func storeOf(t testing.TB, f *File) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.report.db")
	tmp, err := importFile(path, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// merge merges one pass into s the way a Store does (the tests of the
// merge were written for a report held in memory): s is imported into a
// new store, the pass recorded, and s read back.
func (s *Sink) merge(command string, rep *smimesync.Report, passErr error, now time.Time) {
	dir, err := os.MkdirTemp("", "report-merge")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "r.db")
	if s.Entries == nil {
		s.Entries = []*Entry{}
	}
	tmp, err := importFile(path, &File{Sinks: []*Sink{s}}, nil)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		panic(err)
	}
	st, err := Open(path, nil)
	if err != nil {
		panic(err)
	}
	if err := st.Record(s.Sink, command, rep, passErr, now); err != nil {
		panic(err)
	}
	f, err := st.Load()
	if err != nil {
		panic(err)
	}
	*s = *f.Sinks[0]
}
