package smimesync_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

func TestLockInProcess(t *testing.T) {
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	// The lock file records who holds it.
	b, err := os.ReadFile(st.LockPath())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want this process's PID %d", got, os.Getpid())
	}

	// A second Lock in the same process opens its own file descriptor and
	// must be refused, naming the lock file and the holder.
	_, err = st.Lock()
	if !errors.Is(err, smimesync.ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	var le *smimesync.LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || le.Lock != st.LockPath() || le.State != string(st) {
		t.Errorf("second Lock: %#v, want a LockedError naming %s and PID %d", err, st.LockPath(), os.Getpid())
	}
	for _, want := range []string{st.LockPath(), fmt.Sprintf("process %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v, want nil", err)
	}
	// Released, the lock can be taken again.
	unlock2, err := st.Lock()
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	if err := unlock2(); err != nil {
		t.Fatal(err)
	}
}

func TestLockErrors(t *testing.T) {
	if _, err := smimesync.FileState("").Lock(); err == nil || errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("Lock without a path: %v, want a plain error", err)
	}
	missing := smimesync.FileState(filepath.Join(t.TempDir(), "no", "such", "dir", "state.json"))
	if _, err := missing.Lock(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lock in a missing folder: %v, want an error wrapping fs.ErrNotExist", err)
	}
}

// TestLockOtherProcess runs this test binary again as a child that tries
// the lock the parent holds: the child must get ErrLocked naming the
// parent, and get the lock once the parent lets go.
func TestLockOtherProcess(t *testing.T) {
	if path := os.Getenv("SMIMESYNC_LOCK_CHILD"); path != "" {
		lockChild(path)
		return
	}
	st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	child := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockOtherProcess$")
		cmd.Env = append(os.Environ(), "SMIMESYNC_LOCK_CHILD="+string(st))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("child: %v\n%s", err, out.String())
		}
		for line := range strings.SplitSeq(out.String(), "\n") {
			if s, ok := strings.CutPrefix(line, "LOCK-RESULT "); ok {
				return s
			}
		}
		t.Fatalf("child printed no result:\n%s", out.String())
		return ""
	}
	if got, want := child(), fmt.Sprintf("locked pid=%d", os.Getpid()); got != want {
		t.Errorf("child while the parent holds the lock: %q, want %q", got, want)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if got := child(); got != "acquired" {
		t.Errorf("child after the parent let go: %q, want acquired", got)
	}
}

// lockChild is the child's side of TestLockOtherProcess.
func lockChild(path string) {
	unlock, err := smimesync.FileState(path).Lock()
	var le *smimesync.LockedError
	switch {
	case err == nil:
		fmt.Println("LOCK-RESULT acquired")
		unlock()
	case errors.Is(err, smimesync.ErrLocked) && errors.As(err, &le):
		fmt.Printf("LOCK-RESULT locked pid=%d\n", le.PID)
	default:
		fmt.Printf("LOCK-RESULT error %v\n", err)
	}
}

func ExampleFileState_Lock() {
	dir, _ := os.MkdirTemp("", "smimesync-example-")
	defer os.RemoveAll(dir)
	st := smimesync.FileState(filepath.Join(dir, "state.json"))

	unlock, err := st.Lock()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unlock()

	// A second instance is refused until the first lets go.
	_, err = st.Lock()
	fmt.Println(errors.Is(err, smimesync.ErrLocked))
	// Output: true
}
