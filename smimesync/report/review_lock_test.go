package report

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPassMissedToALongReader: a `smimesync report` (another process)
// reading a large store holds its shared lock for the whole scan (tens of
// seconds at a million entries; readers that overlap hold it longer). A
// pass whose merge cannot get the lock within writeTimeout fails with
// ErrLocked, and its rows (the pass's report is closed after it) are not
// in the report: the next merge says so in its LastPass.Errors and leaves
// the sink not Complete, as the next full pass's merge will judge it.
func TestPassMissedToALongReader(t *testing.T) {
	defer func(d time.Duration) { writeTimeout = d }(writeTimeout)
	writeTimeout = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Record("x", "run", fullOf(3), nil, reportNow); err != nil {
		t.Fatal(err)
	}
	reader, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	delta := &smimesync.Report{Plan: smimesync.Plan{Changes: []*smimesync.Change{
		change("new", smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate")}}}
	recErr := st.Record("x", "run", delta, nil, reportNow.Add(time.Hour))
	reader.Close()
	if !errors.Is(recErr, ErrLocked) {
		t.Fatalf("the merge while a reader held the store: %v, want ErrLocked", recErr)
	}
	// The next pass, a quiet delta, gets the lock.
	if err := st.Record("x", "run", &smimesync.Report{}, nil, reportNow.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	sk := f.Sinks[0]
	if sk.Complete {
		t.Error("the sink is Complete although a delta's rows are missing")
	}
	if !strings.Contains(strings.Join(sk.LastPass.Errors, "\n"), "missing from the report") {
		t.Errorf("the next pass's errors do not say a pass is missing: %q", sk.LastPass.Errors)
	}
	// Said once: the pass after does not repeat it.
	if err := st.Record("x", "run", &smimesync.Report{}, nil, reportNow.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f, err = st.Load(); err != nil {
		t.Fatal(err)
	}
	if errs := f.Sinks[0].LastPass.Errors; len(errs) != 0 {
		t.Errorf("the pass after repeats: %q", errs)
	}
}
