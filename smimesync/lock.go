package smimesync

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// ErrLocked is wrapped by the error [BoltState.Lock] or [FileState.Lock] returns when another
// holder (another process, or another Lock in this one) has the state's
// lock. The error is a [*LockedError] that names the lock file and, when it
// could be read, the process holding it.
var ErrLocked = errors.New("smimesync: state is locked by another instance")

// LockedError says who holds a state's lock. It wraps [ErrLocked].
type LockedError struct {
	// State is the state file; Lock is its lock file.
	State, Lock string
	// PID is the process that recorded itself in the lock file, 0 when
	// that could not be read.
	PID int
}

func (e *LockedError) Error() string {
	who := "another instance"
	if e.PID > 0 {
		who = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("smimesync: state %s is locked by %s (lock file %s); only one sync may use a state at a time", e.State, who, e.Lock)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// LockPath is the lock file of the state: the state's path, with its
// symbolic links resolved (the folder's, and the file's own when it is
// one), and ".lock" appended. Two names for one state file (a link to it,
// or to its folder) give one lock file, so that two configurations naming
// the same state through a symbolic link contend for one lock.
func (f FileState) LockPath() string { return resolvedPath(string(f)) + ".lock" }

// Lock takes the state's lock, so that one process at a time plans and
// applies against it: an exclusive, non-blocking lock on the file
// [FileState.LockPath] (flock on Unix, LockFileEx on Windows), which is
// created with mode 0600 if needed and records the holder's process ID.
// A lock file that is a symbolic link is refused ([ErrSymlink]), never
// followed.
// The operating system releases the lock when the process ends, however it
// ends: a crash leaves no stale lock, only a stale lock file, which is
// harmless.
//
// Lock does not wait: when the lock is held, by another process or by
// another Lock in this process, it returns an error wrapping [ErrLocked]
// (a [*LockedError]). unlock releases the lock; calling it again does
// nothing.
func (f FileState) Lock() (unlock func() error, err error) {
	if f == "" {
		return nil, errors.New("smimesync: FileState.Lock: the state has no path")
	}
	path := f.LockPath()
	file, err := openNoFollow(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("smimesync: opening the lock file: %w", err)
	}
	held, err := lockFile(file)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("smimesync: locking %s: %w", path, err)
	}
	if held {
		pid := readLockPID(path)
		file.Close()
		return nil, &LockedError{State: string(f), Lock: path, PID: pid}
	}
	// Record who holds the lock, for the error others get. A failure here
	// does not weaken the lock: only the message loses the PID.
	// Written over the old content, then cut to length, so that a full
	// disk does not lose the file's page to the lock: the state's journal
	// may need it.
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if _, err := file.WriteAt(pid, 0); err == nil {
		file.Truncate(int64(len(pid)))
	}
	var (
		mu   sync.Mutex
		done bool
	)
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return nil
		}
		done = true
		// The PID stays in the file (a rival that reads it after this
		// unlock names a process that just let go; so does one after a
		// crash): emptying the file would free its page, which a full
		// disk may not give back.
		if err := errors.Join(unlockFile(file), file.Close()); err != nil {
			return fmt.Errorf("smimesync: unlocking %s: %w", path, err)
		}
		return nil
	}, nil
}

// readLockPID reads the PID a lock file records; 0 when it cannot.
func readLockPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// A Locker is a [State] that one process at a time may use: [BoltState]
// and [FileState] are. [Syncer.Apply] takes the lock itself for as long as it runs, unless
// the Syncer already holds it through [Syncer.Lock]; a State that is not a
// Locker is not locked (a [MemoryState] lives in one process).
//
// Lock must not wait: when another holder has the lock it returns an error
// wrapping [ErrLocked]. unlock releases it; calling it again does nothing.
type Locker interface {
	State
	Lock() (unlock func() error, err error)
}

// Lock takes the lock of the Syncer's State, when it is a [Locker], and
// holds it until unlock is called: a service or a command that plans and
// applies again and again calls it once, first, so that a second instance
// is refused before it reads anything. While it is held, Apply does not
// take the lock again. Lock may be called more than once; the State's
// lock is released when every unlock was called. With a State that is not
// a Locker, Lock does nothing and returns a no-op unlock.
//
// The error wraps [ErrLocked] when another holder has the lock.
func (s *Syncer) Lock() (unlock func() error, err error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.locks == 0 {
		l, ok := s.State.(Locker)
		if !ok {
			return func() error { return nil }, nil
		}
		u, err := l.Lock()
		if err != nil {
			return nil, err
		}
		s.unlock = u
	}
	s.locks++
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			s.lockMu.Lock()
			defer s.lockMu.Unlock()
			if s.locks--; s.locks == 0 && s.unlock != nil {
				err, s.unlock = s.unlock(), nil
			}
		})
		return err
	}, nil
}
