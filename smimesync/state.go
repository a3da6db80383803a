package smimesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// StateVersion is the version of the [Snapshot] layout this package writes.
const StateVersion = 1

// Snapshot is what must survive between runs.
type Snapshot struct {
	// Version is StateVersion.
	Version int `json:"version"`
	// Cookie is the source's delta cookie from the last pass whose changes
	// were all applied; nil means the next pass is full.
	Cookie []byte `json:"cookie,omitempty"`
	// Published records, per directory entry ID, what was last written to
	// its recipient. It stands in for the recipient's certificates when a
	// sink cannot read them back.
	Published map[string]Published `json:"published"`
	// LastRun is when the last Apply finished; LastGood when the last one
	// finished with no error.
	LastRun  time.Time `json:"lastRun,omitzero"`
	LastGood time.Time `json:"lastGood,omitzero"`
}

// Published is what was last written to one recipient.
type Published struct {
	// Recipient is the sink's recipient ID.
	Recipient string `json:"recipient"`
	// UserCertificate and UserSMIMECertificate are the fingerprints of the
	// values written.
	UserCertificate      []Fingerprint `json:"userCertificate,omitempty"`
	UserSMIMECertificate []Fingerprint `json:"userSMIMECertificate,omitempty"`
	// At is when they were written.
	At time.Time `json:"at"`
}

// A State stores the [Snapshot] between runs.
//
// Load returns the saved snapshot, or an empty one (and no error) when
// nothing was ever saved. A snapshot that exists but cannot be read must be
// an error (wrapping [ErrStateUnreadable]): starting over silently would
// forget what was published and resend every delta from scratch.
//
// Save replaces the saved snapshot. It must be atomic: after a crash, Load
// returns either the old snapshot or the new one, whole.
type State interface {
	Load(ctx context.Context) (*Snapshot, error)
	Save(ctx context.Context, s *Snapshot) error
}

// ErrStateUnreadable is wrapped by State.Load when saved state exists but
// cannot be read or decoded.
var ErrStateUnreadable = errors.New("smimesync: saved state cannot be read")

// FileState keeps the snapshot in a JSON file at the given path. Save writes
// a temporary file in the same directory, syncs it, renames it over the old
// one and syncs the directory, so a crash leaves the old or the new file,
// never a mix. The file is created with mode 0600.
type FileState string

// Load reads the snapshot. A missing file is an empty snapshot; a file that
// cannot be read or parsed is an error wrapping ErrStateUnreadable.
func (f FileState) Load(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return newSnapshot(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	s := new(Snapshot)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrStateUnreadable, f, err)
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("%w: %s: version %d, this program reads version %d", ErrStateUnreadable, f, s.Version, StateVersion)
	}
	if s.Published == nil {
		s.Published = map[string]Published{}
	}
	return s, nil
}

// Save writes the snapshot atomically.
func (f FileState) Save(ctx context.Context, s *Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return fmt.Errorf("smimesync: encoding state: %w", err)
	}
	return WriteFileAtomic(string(f), b, 0o600)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory. On any error the old
// file, if any, is left as it was.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("smimesync: writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("smimesync: writing %s: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("smimesync: writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("smimesync: writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("smimesync: writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("smimesync: writing %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}

// MemoryState keeps the snapshot in memory: for tests, and for programs that
// embed the Syncer and keep state elsewhere. The zero value is empty and
// ready to use.
type MemoryState struct {
	mu sync.Mutex
	b  []byte
}

// Load returns a copy of the saved snapshot.
func (m *MemoryState) Load(ctx context.Context) (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b == nil {
		return newSnapshot(), nil
	}
	s := new(Snapshot)
	if err := json.Unmarshal(m.b, s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	if s.Published == nil {
		s.Published = map[string]Published{}
	}
	return s, nil
}

// Save stores a copy of s.
func (m *MemoryState) Save(ctx context.Context, s *Snapshot) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.b = b
	m.mu.Unlock()
	return nil
}

func newSnapshot() *Snapshot {
	return &Snapshot{Version: StateVersion, Published: map[string]Published{}}
}
