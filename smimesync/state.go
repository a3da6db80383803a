package smimesync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/atomicfile"
)

// StateVersion is the version of the [Snapshot] layout this package writes.
const StateVersion = 1

// StateFormat is the type marker [FileState] writes in its file, as the
// "format" member beside the [Snapshot]'s: it tells a state file from any
// other JSON file that a configuration slip might point at. Load refuses a
// file whose marker is anything else. A file without the marker (as
// written before the marker existed) is read only if it has exactly the
// Snapshot's layout: an object with "version" and "published" and no
// member Snapshot does not know; the next Save adds the marker.
const StateFormat = "smimesync-state"

// stateFile is the layout of a FileState's file: the marker, then the
// snapshot's members.
type stateFile struct {
	Format string `json:"format"`
	*Snapshot
}

// decodeStateFile reads a state file's bytes strictly: a JSON object (not
// null, not an array), with the StateFormat marker or, lacking it, the
// legacy layout's required members; no unknown member; nothing after it;
// this package's StateVersion.
func decodeStateFile(b []byte) (*Snapshot, error) {
	var members map[string]json.RawMessage
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("not a smimesync state file: not a JSON object")
	}
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, err
	}
	_, marked := members["format"]
	for _, k := range []string{"version", "published"} {
		if _, ok := members[k]; !ok {
			if marked {
				return nil, fmt.Errorf("not a smimesync state file: no %q member", k)
			}
			return nil, fmt.Errorf("not a smimesync state file: no %q member and no %q marker", k, StateFormat)
		}
	}
	sf := stateFile{Snapshot: new(Snapshot)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a smimesync state file: data after the JSON object")
	}
	if marked && sf.Format != StateFormat {
		return nil, fmt.Errorf("not a smimesync state file: format %q, want %q", sf.Format, StateFormat)
	}
	s := sf.Snapshot
	if s.Version != StateVersion {
		return nil, fmt.Errorf("version %d, this program reads version %d", s.Version, StateVersion)
	}
	if s.Published == nil {
		s.Published = map[string]Published{}
	}
	return s, nil
}

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
	// LastFull is when the last full pass (a plan of PlanFull, or a
	// Plan that read everything) was applied whole: not stopped by the
	// guard, a cancel or an unusable sink (write failures do not count
	// against it). A service schedules its next full pass from it, so
	// that a restart keeps the cadence. Zero in a state written before
	// it existed: the next service pass is then full.
	LastFull time.Time `json:"lastFull,omitzero"`
	// Pending holds, by entry, the directory entries an earlier pass
	// skipped because they had no recipient yet or could not be looked up. Every delta pass plans them again
	// (a delta would not bring them back), until they are published or a
	// full pass no longer sees them. At most MaxPending.
	Pending map[string]*directory.Entry `json:"pending,omitempty"`
	// Departed holds, by entry, what was published for entries that left
	// the directory (see SkipDeparted) and is still on their recipients:
	// nothing was removed (Syncer.RemoveDeparted off), or the removal
	// failed. Every full pass (and, with RemoveDeparted, every pass)
	// plans them again; an entry that comes back leaves it. At most
	// MaxDeparted. Absent in a state written before it existed.
	Departed map[string]Published `json:"departed,omitempty"`
	// Generation counts saves. A [Recorder]'s records carry the generation
	// they were made in, so that records already folded into a saved
	// snapshot are not replayed over a newer one.
	Generation uint64 `json:"generation,omitempty"`

	// part is set on the snapshot of a pass over a RecordStore: the
	// snapshot then holds the header only, and its records are read
	// and changed through part (see statepass.go).
	part *partial
	// writes is, in a header a StateView of this package returned, the
	// store's count of the writes saved to it (each Record, Save and
	// SaveChanges counts one): a plan made over a RecordStore is stale
	// when it moved, even at the same generation (see keyWrites). 0 from
	// Load, and from a StateView of another package.
	writes uint64
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
	// User names the directory entry for people (UPN, mail or DN), and
	// Name and Kind are the recipient's (cloud.Recipient): what a row
	// about an entry that left the directory shows, and what removing its
	// values needs, once the entry cannot be read any more. Empty in a
	// record written before they existed: the row then names the entry by
	// its ID and the recipient by its ID.
	User string `json:"user,omitempty"`
	Name string `json:"name,omitempty"`
	Kind string `json:"kind,omitempty"`
}

// forgets reports whether p is the record of a write that left nothing
// published: a departed entry's values removed. Record notes it with a
// Published whose Recipient is empty, and Load then drops the entry's
// record.
func (p Published) forgets() bool { return p.Recipient == "" }

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

// A Recorder is a [State] that can also note a single write durably, as
// soon as it is acknowledged, between two saves. Apply records every write
// it makes when its State is a Recorder, so that a crash (a kill, a power
// cut) in the middle of a long apply does not forget what was already
// published: the next Load includes it. Record must be safe for concurrent
// use; Save folds the records into the snapshot and starts afresh. A
// Published whose Recipient is empty records that nothing is published
// for id any more (a departed entry's values were removed): Load must then
// drop id from Snapshot.Published and Snapshot.Departed.
type Recorder interface {
	State
	Record(ctx context.Context, id string, p Published) error
}

// A Preparer is a [State] that must get ready before the first write of
// an apply: [Syncer.Apply] calls Prepare once, after the guard and before
// the first write to the sink, when the plan has anything to write, and
// writes nothing when it fails. A [Recorder] whose records can fail for
// reasons known in advance (an unwritable folder) implements it, so that
// no write reaches the sink unrecorded. [FileState] does; [MemoryState]
// has nothing to prepare.
type Preparer interface {
	State
	Prepare(ctx context.Context) error
}

// ErrStateUnwritable is wrapped by the errors of Apply when the state
// cannot record writes or be saved (an unwritable folder, a full disk, a
// journal that is a symbolic link): FileState's Prepare and Record errors,
// and Apply's own "saving state" error, wrap it.
var ErrStateUnwritable = errors.New("smimesync: the state cannot be written")

// ErrStateUnreadable is wrapped by State.Load when saved state exists but
// cannot be read or decoded.
var ErrStateUnreadable = errors.New("smimesync: saved state cannot be read")

// FileState keeps the snapshot in a JSON file at the given path, marked as
// a state file by its [StateFormat] member. It is the state of earlier
// releases, kept for one more release for embedders: [BoltState] replaces
// it (one record per recipient instead of a whole file rewritten by every
// save) and imports a FileState's file once ([BoltState.Import]).
//
// The file is marked as
// a state file by its StateFormat member. Save writes
// a temporary file in the same directory, syncs it, renames it over the old
// one and syncs the directory, so a crash leaves the old or the new file,
// never a mix. The file is created with mode 0600.
//
// FileState is a [Recorder] and a [Preparer]: Prepare opens (creates)
// "<path>.journal" before an apply's first write; Record appends one JSON
// line per write to it and syncs it (the journal is never opened through
// a symbolic link: see [ErrSymlink]); Load replays the journal over the snapshot
// (a torn last line, from a crash in the middle of an append, is ignored);
// Save removes it.
type FileState string

// journalPath is where Record appends.
func (f FileState) journalPath() string { return string(f) + ".journal" }

// journalLine is one record of the journal.
type journalLine struct {
	Generation uint64    `json:"g"`
	ID         string    `json:"id"`
	Published  Published `json:"p"`
}

// journalMu serialises appends to journals within the process, and
// guards generations.
var journalMu sync.Mutex

// generations remembers, per state file, the generation Load or Save last
// saw, so that Record need not read the snapshot for it.
var generations = map[string]uint64{}

// Load reads the snapshot and replays the journal. A missing file is an
// empty snapshot; a file that cannot be read or parsed is an error wrapping
// ErrStateUnreadable.
func (f FileState) Load(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := newSnapshot()
	b, err := os.ReadFile(string(f))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	default:
		if s, err = decodeStateFile(b); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrStateUnreadable, f, err)
		}
	}
	if err := f.replay(s); err != nil {
		return nil, err
	}
	journalMu.Lock()
	generations[string(f)] = s.Generation
	journalMu.Unlock()
	return s, nil
}

// replay applies the journal's records of the snapshot's generation.
func (f FileState) replay(s *Snapshot) error {
	j, err := openNoFollow(f.journalPath(), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStateUnreadable, err)
	}
	b, err := io.ReadAll(j)
	j.Close()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		var l journalLine
		if err := json.Unmarshal(line, &l); err != nil {
			if i == len(lines)-1 {
				break // torn last append: the write it noted was not acknowledged as recorded
			}
			return fmt.Errorf("%w: %s line %d: %v", ErrStateUnreadable, f.journalPath(), i+1, err)
		}
		switch {
		case l.Generation != s.Generation || l.ID == "":
		case l.Published.forgets():
			delete(s.Published, l.ID)
			delete(s.Departed, l.ID)
		default:
			s.Published[l.ID] = l.Published
			delete(s.Departed, l.ID) // it came back, and was written
		}
	}
	return nil
}

// Record appends one write to the journal and syncs it.
func (f FileState) Record(ctx context.Context, id string, p Published) error {
	return f.record(ctx, journalLine{ID: id, Published: p})
}

func (f FileState) record(ctx context.Context, l journalLine) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	journalMu.Lock()
	defer journalMu.Unlock()
	if l.Generation == 0 {
		l.Generation = f.generation()
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	j, err := f.openJournal()
	if err != nil {
		return fmt.Errorf("%w: recording a write: %w", ErrStateUnwritable, err)
	}
	if _, err := j.Write(append(b, '\n')); err != nil {
		j.Close()
		return fmt.Errorf("%w: recording a write: %w", ErrStateUnwritable, err)
	}
	if err := j.Sync(); err != nil {
		j.Close()
		return fmt.Errorf("%w: recording a write: %w", ErrStateUnwritable, err)
	}
	return j.Close()
}

// openJournal opens the journal to append, creating it (mode 0600) if
// needed, never through a symbolic link, and mends a torn tail.
func (f FileState) openJournal() (*os.File, error) {
	j, err := openNoFollow(f.journalPath(), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := mendTornTail(j); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// Prepare makes sure writes can be recorded before any is made: it opens
// (creating it if needed) the journal, as Record will. An unwritable state
// folder, or a journal that is a symbolic link, fails here, and Apply then
// writes nothing to the sink. It writes no record.
func (f FileState) Prepare(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	journalMu.Lock()
	defer journalMu.Unlock()
	j, err := f.openJournal()
	if err != nil {
		return fmt.Errorf("%w: it cannot record writes: %w", ErrStateUnwritable, err)
	}
	if err := j.Sync(); err != nil {
		j.Close()
		return fmt.Errorf("%w: it cannot record writes: %w", ErrStateUnwritable, err)
	}
	return j.Close()
}

// mendTornTail makes the journal end with a whole line before an append.
// An append that failed part way (a full disk: the write was short) leaves
// a line without its newline; Load ignores it while it is the last line,
// but the next record would be glued to it and the pair read back as a
// damaged line in the middle: an unreadable state, and a lost record. A
// tail that is a whole record (only the newline is missing) gets its
// newline; anything else is cut off.
func mendTornTail(j *os.File) error {
	fi, err := j.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := j.ReadAt(last, fi.Size()-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	b := make([]byte, fi.Size())
	if _, err := j.ReadAt(b, 0); err != nil {
		return err
	}
	start := bytes.LastIndexByte(b, '\n') + 1
	if json.Valid(b[start:]) {
		_, err := j.Write([]byte{'\n'})
		return err
	}
	return j.Truncate(int64(start))
}

// generation is the saved snapshot's generation (0 when none). The caller
// holds journalMu.
func (f FileState) generation() uint64 {
	if g, ok := generations[string(f)]; ok {
		return g
	}
	b, err := os.ReadFile(string(f))
	if err != nil {
		return 0
	}
	var g struct {
		Generation uint64 `json:"generation"`
	}
	json.Unmarshal(b, &g)
	return g.Generation
}

// Save writes the snapshot atomically, as the next generation, and then
// removes the journal it folds in.
func (f FileState) Save(ctx context.Context, s *Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	journalMu.Lock()
	defer journalMu.Unlock()
	next := *s
	next.Generation = s.Generation + 1
	b, err := json.MarshalIndent(stateFile{Format: StateFormat, Snapshot: &next}, "", " ")
	if err != nil {
		return fmt.Errorf("smimesync: encoding state: %w", err)
	}
	if err := atomicfile.Write(string(f), b, 0o600); err != nil {
		return fmt.Errorf("smimesync: %w", err)
	}
	s.Generation = next.Generation
	generations[string(f)] = next.Generation
	// Records of the old generation are in the snapshot now. A journal
	// that cannot be removed (or is left by a crash right here) is
	// harmless: Load ignores records of another generation, and the next
	// Record appends after them.
	os.Remove(f.journalPath())
	return nil
}

// MemoryState keeps the snapshot in memory: for tests, and for programs that
// embed the Syncer and keep state elsewhere. The zero value is empty and
// ready to use.
type MemoryState struct {
	mu sync.Mutex
	b  []byte
	// saves counts Save and SaveChanges: a StateView header's count of
	// writes (Snapshot.writes).
	saves uint64
	// dec is b decoded once for the views (see memoryDecoded), built on
	// the first read after a save; nil until then.
	dec *memoryDecoded
	// decodes counts the decodings of b whole, for the tests.
	decodes int
	memos   memoTable // a MemoryState is a MemoState (memo.go)
}

// Load returns a copy of the saved snapshot.
func (m *MemoryState) Load(ctx context.Context) (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loadLocked()
}

// loadLocked is Load; the caller holds m.mu.
func (m *MemoryState) loadLocked() (*Snapshot, error) {
	if m.b == nil {
		return newSnapshot(), nil
	}
	s := new(Snapshot)
	m.decodes++
	if err := json.Unmarshal(m.b, s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	if s.Published == nil {
		s.Published = map[string]Published{}
	}
	return s, nil
}

// Save stores a copy of s, as the next generation.
func (m *MemoryState) Save(ctx context.Context, s *Snapshot) error {
	next := *s
	next.Generation++
	b, err := json.Marshal(&next)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.setLocked(b)
	m.mu.Unlock()
	s.Generation = next.Generation
	return nil
}

// setLocked makes b the saved snapshot; the caller holds m.mu.
func (m *MemoryState) setLocked(b []byte) {
	m.b = b
	m.saves++
	m.dec = nil
}

func newSnapshot() *Snapshot {
	return &Snapshot{Version: StateVersion, Published: map[string]Published{}}
}
