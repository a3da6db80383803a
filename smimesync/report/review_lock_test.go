package report

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPassNotLostToALongReader: a `smimesync report` (another process)
// reading a large store holds its shared lock for the whole scan (tens of
// seconds at a million entries; readers that overlap hold it longer). A
// pass whose merge cannot get the lock within writeTimeout must not be
// lost: here a delta's row, which no later delta repeats, is missing from
// the report until the next full pass.
func TestPassNotLostToALongReader(t *testing.T) {
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
	t.Logf("the merge while a reader held the store: %v", recErr)
	// The next pass, a quiet delta, gets the lock.
	if err := st.Record("x", "run", &smimesync.Report{}, nil, reportNow.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range f.Sinks[0].Entries {
		if e.ID == "new" {
			return
		}
	}
	t.Errorf("the delta's row (user new, added and written) is not in the report after the reader left: %d entries", len(f.Sinks[0].Entries))
}
