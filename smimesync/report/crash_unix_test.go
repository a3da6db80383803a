//go:build unix

package report

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// crashChildEnv names the store a child of TestCrashMidMerge merges into
// until it kills itself.
const crashChildEnv = "SMIMESYNC_REPORT_CRASH_CHILD"

// crashRows is the child's full pass: five batches of rows.
const crashRows = 5 * batchSize

// TestCrashMidMerge: a process killed (SIGKILL) in the middle of merging
// a pass, after two of its batches committed, leaves a store that opens
// and reads: the header of the pass before, the two batches' records, and
// counts that agree with the records. The next pass merges whole.
func TestCrashMidMerge(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		st, err := Open(path, nil)
		if err != nil {
			os.Exit(3)
		}
		batches := 0
		afterBatch = func() {
			if batches++; batches == 2 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
		st.Record("x", "run", crashPass(), nil, reportNow.Add(time.Hour))
		os.Exit(4) // not reached
	}
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := fullOf(100)
	if err := st.Record("x", "run", before, nil, reportNow); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidMerge$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child: %v, want killed by SIGKILL", err)
	}

	after, err := Open(path, nil)
	if err != nil {
		t.Fatalf("opening the store after the crash: %v", err)
	}
	sum, err := after.Summarize(path, reportNow, 30)
	if err != nil {
		t.Fatalf("reading the store after the crash: %v", err)
	}
	ss := sum.Sinks[0]
	if !ss.LastPass.Finished.Equal(reportNow) || !ss.Complete {
		t.Errorf("the header after the crash: %+v, want the pass before's", ss.LastPass)
	}
	// The first 100 rows of the crashed pass replaced the 100 entries
	// before; the two batches added the rest of theirs.
	if want := 2 * batchSize; ss.Users != want {
		t.Errorf("%d users after the crash, want %d (two batches)", ss.Users, want)
	}
	if n := recordCount(t, after); n != 2*batchSize {
		t.Errorf("the count is %d, want %d", n, 2*batchSize)
	}
	// The next pass merges whole.
	if err := after.Record("x", "run", crashPass(), nil, reportNow.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if sum, err = after.Summarize(path, reportNow, 30); err != nil || sum.Sinks[0].Users != crashRows ||
		!sum.Sinks[0].LastPass.Finished.Equal(reportNow.Add(2*time.Hour)) {
		t.Errorf("the pass after: %+v, %v", sum.Sinks[0].LastPass, err)
	}
	if n := recordCount(t, after); n != crashRows {
		t.Errorf("the count is %d, want %d", n, crashRows)
	}
}

// crashPass is the full pass the crash test merges: crashRows entries,
// the first 100 of them those of fullOf(100).
func crashPass() *smimesync.Report {
	rep := fullOf(0)
	for i := range crashRows {
		rep.Changes = append(rep.Changes, change(strconv.Itoa(i), smimesync.ActionAdd, smimesync.OutcomeWritten, "userCertificate"))
	}
	return rep
}
