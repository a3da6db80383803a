package smimesync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The buckets of a [BoltState]'s store.
var (
	// bucketMeta holds the snapshot's header (key keySnapshot: the
	// Snapshot without its three maps, as JSON with the StateFormat
	// marker) and, after an import, keyImported.
	bucketMeta = []byte("meta")
	// bucketPublished, bucketPending and bucketDeparted hold one record
	// per directory entry ID: Snapshot.Published (binary, see
	// store_record.go; JSON in a store saved before), Pending and
	// Departed (JSON).
	bucketPublished = []byte("published")
	bucketPending   = []byte("pending")
	bucketDeparted  = []byte("departed")
	// bucketHolders indexes bucketPublished by recipient: one empty
	// record per published record, keyed holderKey(recipient, entry key),
	// kept in the transactions that write bucketPublished (see
	// putPublished). It answers "who else holds this recipient" without
	// reading every record (StateView.Holders).
	bucketHolders = []byte("holders")

	keySnapshot = []byte("snapshot")
	// keyImported is the SHA-256 of the JSON state file imported into the
	// store: an import interrupted after its commit (before the file was
	// renamed away) is not imported again, and another JSON state is
	// refused rather than laid over the store.
	keyImported = []byte("imported")
	// keyHolders is the generation (8 bytes, big-endian) whose header was
	// written together with a complete bucketHolders: every header write
	// of this package writes it. A store whose header was saved by a
	// release without the index (its generation differs) has its index
	// rebuilt when it is opened.
	keyHolders = []byte("holders")
	// keyWrites counts (8 bytes, big-endian) the transactions that
	// changed the saved state: every Record, Save and SaveChanges (and an
	// import) adds one in the transaction it commits. The generation
	// counts saves only; a Record leaves it as it is. A plan reads the
	// count with the header (boltView.Header), and a plan file is written
	// (or a plan applied) only while it has not moved: the state the plan
	// file's SHA-256 vouches for is then the one the plan read, without
	// the plan reading every record. A store written before the count
	// existed reads as 0 until its next write.
	keyWrites = []byte("writes")
)

// BoltState keeps the snapshot in an embedded transactional store (a
// bbolt file, go.etcd.io/bbolt): one record per recipient, so that a
// write's acknowledgement is recorded in one small transaction, synced to
// disk before Record returns, and a crash at any point loses no record
// that was acknowledged.
//
// Save writes, in one transaction, the records that changed and the
// snapshot's header (cookie, times, generation): the delta cookie is thus
// committed only when Apply saves at the end of a pass. Save counts the
// generation up, as [FileState] did, for the stale-plan check.
//
// The store's file lock is the instance lock: a BoltState is a [Locker],
// and while one process has the store open (for a Lock, or for the
// length of one Load, Save or Record) another one's Lock, Load, Save or
// Record fails with an error wrapping [ErrLocked] (a [*LockedError] that
// names the holder's process where the system tells it: Linux's
// /proc/locks). Within one process,
// share one *BoltState for one file (a second Lock on it is refused, as
// for FileState; Load while it is locked reads through the open store).
//
// When Import names a JSON state file of [FileState]'s (its journal
// included) that exists, the first open imports it, in the one
// transaction that creates the store's content, and then renames it (and
// its journal) to "<name>.imported-<UTC time>.bak": it is never deleted.
// A JSON file that is not a state is refused ([ErrStateUnreadable]), and
// so is a JSON state found beside a store that already holds another one:
// neither is lost, the operator chooses.
//
// A file at Path that is not a store of this package (not a bbolt file, or
// one without the StateFormat marker) is refused with [ErrStateUnreadable];
// a symbolic link at Path is refused with [ErrSymlink]. The file is
// created with mode 0600.
//
// bbolt reads the file through a memory mapping, and every page of it a
// pass reads stays mapped into the process, counting in its RSS (page
// cache as it is), until the store is closed: most of the file, in a pass
// over every record. With MapLimit set, on Linux, a BoltState gives those
// pages back as it goes (they stay in the page cache, and are mapped in
// again from there when read again), so that what it keeps mapped in
// stays near MapLimit however large the file is.
//
// Set Path (and Import) before first use and do not change them; a
// BoltState must not be copied after first use.
type BoltState struct {
	// Path is the store's file.
	Path string
	// Import is a FileState JSON file to import once, if it exists; empty
	// for none.
	Import string
	// MapLimit, when positive, bounds on Linux how far the pages of the
	// file mapped into the process may grow (in bytes) before the
	// BoltState gives them back (16 MiB keeps a pass's near 16 to 50
	// MiB). 0 or negative (the default) keeps every page read mapped
	// until the store is closed: the fastest reads, and up to the whole
	// file in the process's RSS, as clean page cache the kernel reclaims
	// as it needs. Mapping pages in again costs time: a pass of random
	// lookups over a file many times the limit maps most of its pages in
	// again after each time it gives them back, which made the lookups of
	// a pass over 100,000 records 5 to 10 times slower on the virtual
	// machine it was measured on (see storeshed_linux.go). So it is off
	// unless a bound on RSS matters more than the pass's time. Other
	// systems ignore it.
	MapLimit int64

	mu     sync.Mutex
	db     *bolt.DB
	refs   int  // users of db: operations in flight, and the lock
	locked bool // a Lock is held
	// shed gives back the file's pages the reads and writes mapped in
	// (storeshed_linux.go).
	shed shedder
	// reads keeps read transactions of db between reads (see
	// store_readtx.go); every write goes through write.
	reads readTxs
}

// Lock opens the store and keeps it open (and its file locked) until
// unlock is called. It does not wait: when another process has the store
// open, or another Lock of b is held, the error wraps [ErrLocked].
func (b *BoltState) Lock() (unlock func() error, err error) {
	b.mu.Lock()
	if b.locked {
		b.mu.Unlock()
		return nil, &LockedError{State: b.Path, Lock: b.Path}
	}
	b.mu.Unlock()
	if _, err := b.acquire(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.locked { // a rival Lock of b won the race
		b.mu.Unlock()
		b.release()
		return nil, &LockedError{State: b.Path, Lock: b.Path}
	}
	b.locked = true
	b.mu.Unlock()
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			b.mu.Lock()
			b.locked = false
			b.mu.Unlock()
			err = b.release()
		})
		return err
	}, nil
}

// acquire opens the store if it is not open, and counts a user.
func (b *BoltState) acquire() (*bolt.DB, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil {
		db, err := b.open()
		if err != nil {
			return nil, err
		}
		b.db = db
	}
	b.refs++
	return b.db, nil
}

// release counts a user out, and closes the store (releasing its file
// lock) after the last one.
func (b *BoltState) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs--; b.refs > 0 {
		return nil
	}
	db := b.db
	b.db = nil
	b.reads.drop()
	if err := db.Close(); err != nil {
		return fmt.Errorf("smimesync: closing the state store %s: %w", b.Path, err)
	}
	return nil
}

// with runs fn on the open store. A fn that writes goes through write
// instead.
func (b *BoltState) with(fn func(db *bolt.DB) error) error {
	db, err := b.acquire()
	if err != nil {
		return err
	}
	err = fn(db)
	if cerr := b.release(); err == nil {
		err = cerr
	}
	return err
}

// open opens (creating it if needed) the store, checks that it is one of
// ours, and imports b.Import.
func (b *BoltState) open() (*bolt.DB, error) {
	if b.Path == "" {
		return nil, errors.New("smimesync: BoltState: the state has no path")
	}
	if fi, err := os.Lstat(b.Path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s", ErrSymlink, b.Path)
	}
	// A Timeout this short tries the lock once: Lock must not wait.
	db, err := bolt.Open(b.Path, 0o600, &bolt.Options{Timeout: time.Nanosecond})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, &LockedError{State: b.Path, Lock: b.Path, PID: flockHolder(b.Path)}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %s is not a smimesync state store: %v", ErrStateUnreadable, b.Path, err)
	case err != nil:
		return nil, fmt.Errorf("smimesync: opening the state store %s: %w", b.Path, err)
	}
	// Concurrent Records share one commit (and its syncs); one Record
	// alone waits at most this long for company.
	db.MaxBatchDelay = time.Millisecond
	b.shed.setLimit(b.MapLimit)
	if err := b.init(db); err != nil {
		db.Close()
		return nil, err
	}
	if b.Import != "" {
		if err := b.importJSON(db); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// init creates the buckets of a new store, and refuses a bbolt file that
// is not a state store.
func (b *BoltState) init(db *bolt.DB) error {
	fresh := true
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func([]byte, *bolt.Bucket) error { fresh = false; return nil })
	}); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrStateUnreadable, b.Path, err)
	}
	if !fresh {
		var head []byte
		db.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(bucketMeta); m != nil {
				head = bytes.Clone(m.Get(keySnapshot))
			}
			return nil
		})
		if head == nil {
			return fmt.Errorf("%w: %s is a bbolt file but not a smimesync state store (no %q record)", ErrStateUnreadable, b.Path, StateFormat)
		}
		s, err := decodeStateFile(head)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrStateUnreadable, b.Path, err)
		}
		return b.mendHolders(db, s.Generation)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, n := range [][]byte{bucketPublished, bucketPending, bucketDeparted, bucketHolders} {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return putHeader(tx, newSnapshot(), 0)
	})
	if err != nil {
		return fmt.Errorf("%w: creating the state store %s: %w", ErrStateUnwritable, b.Path, err)
	}
	return nil
}

// importJSON imports the JSON state b.Import, if it exists, and renames it
// (and its journal) away.
func (b *BoltState) importJSON(db *bolt.DB) error {
	src := FileState(b.Import)
	f, err := openNoFollow(b.Import, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: importing %s: %w", ErrStateUnreadable, b.Import, err)
	}
	raw, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%w: importing %s: %w", ErrStateUnreadable, b.Import, err)
	}
	s, err := decodeStateFile(raw)
	if err != nil {
		return fmt.Errorf("%w: importing %s: %v", ErrStateUnreadable, b.Import, err)
	}
	if err := src.replay(s); err != nil {
		return fmt.Errorf("importing %s: %w", b.Import, err)
	}
	sum := sha256.Sum256(raw)
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if bytes.Equal(meta.Get(keyImported), sum[:]) {
			return nil // imported before a crash kept the file from being renamed
		}
		cur, err := loadTx(tx, nil)
		if err != nil {
			return err
		}
		if cur.Generation != 0 || len(cur.Published) != 0 || len(cur.Cookie) != 0 || meta.Get(keyImported) != nil {
			return fmt.Errorf("%w: %s holds a state and so does the store %s: move one of them away (nothing was imported)", ErrStateUnreadable, b.Import, b.Path)
		}
		if err := putSnapshot(tx, s, s.Generation); err != nil {
			return err
		}
		return meta.Put(keyImported, sum[:])
	})
	if err != nil {
		return fmt.Errorf("smimesync: importing %s into %s: %w", b.Import, b.Path, err)
	}
	b.shed.committed(db)
	stamp := time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(b.Import, b.Import+".imported-"+stamp+".bak"); err != nil {
		return fmt.Errorf("%w: %s was imported into %s but cannot be renamed to a backup: %w", ErrStateUnwritable, b.Import, b.Path, err)
	}
	if err := os.Rename(src.journalPath(), src.journalPath()+".imported-"+stamp+".bak"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: the journal %s was imported into %s but cannot be renamed to a backup: %w", ErrStateUnwritable, src.journalPath(), b.Path, err)
	}
	syncDir(filepath.Dir(b.Import))
	return nil
}

// syncDir makes renames in dir durable, where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Load reads the snapshot: an empty one for a new store.
func (b *BoltState) Load(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *Snapshot
	err := b.with(func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) (err error) {
			s, err = loadTx(tx, &b.shed)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// loadTx reads the snapshot in tx, counting what it reads in sh (nil:
// not counted).
func loadTx(tx *bolt.Tx, sh *shedder) (*Snapshot, error) {
	s, err := loadHeaderTx(tx)
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketPublished).ForEach(func(k, v []byte) error {
		sh.touch(tx, walkTouch(len(k), len(v)))
		p, err := decodePublished(k, v)
		s.Published[string(k)] = p
		return err
	})
	return s, err
}

// decodePublished decodes the record of key k (see store_record.go).
func decodePublished[K []byte | string](k K, v []byte) (Published, error) {
	p, err := decodePublishedRecord(v)
	if err != nil {
		return p, fmt.Errorf("%w: the record of %s: %v", ErrStateUnreadable, k, err)
	}
	return p, nil
}

// loadHeaderTx reads the snapshot in tx without its Published records:
// the header, Pending and Departed.
func loadHeaderTx(tx *bolt.Tx) (*Snapshot, error) {
	s, err := decodeStateFile(tx.Bucket(bucketMeta).Get(keySnapshot))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	err = tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
		e := new(directory.Entry)
		if err := json.Unmarshal(v, e); err != nil {
			return fmt.Errorf("%w: the pending entry %s: %v", ErrStateUnreadable, k, err)
		}
		if s.Pending == nil {
			s.Pending = map[string]*directory.Entry{}
		}
		s.Pending[string(k)] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketDeparted).ForEach(func(k, v []byte) error {
		var p Published
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("%w: the departed record of %s: %v", ErrStateUnreadable, k, err)
		}
		if s.Departed == nil {
			s.Departed = map[string]Published{}
		}
		s.Departed[string(k)] = p
		return nil
	})
	return s, err
}

// putHeader writes the snapshot's header (everything but its maps), as
// generation gen, and counts a write (keyWrites).
func putHeader(tx *bolt.Tx, s *Snapshot, gen uint64) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	head := *s
	head.Version = StateVersion
	head.Published, head.Pending, head.Departed = nil, nil, nil
	head.Generation = gen
	raw, err := json.Marshal(stateFile{Format: StateFormat, Snapshot: &head})
	if err != nil {
		return err
	}
	if err := meta.Put(keySnapshot, raw); err != nil {
		return err
	}
	if err := bumpWrites(tx); err != nil {
		return err
	}
	return meta.Put(keyHolders, binary.BigEndian.AppendUint64(nil, gen))
}

// writesTx is the store's count of writes (keyWrites) in tx: 0 when it
// has none.
func writesTx(tx *bolt.Tx) uint64 {
	if m := tx.Bucket(bucketMeta).Get(keyWrites); len(m) == 8 {
		return binary.BigEndian.Uint64(m)
	}
	return 0
}

// bumpWrites adds one to the store's count of writes, in tx.
func bumpWrites(tx *bolt.Tx) error {
	return tx.Bucket(bucketMeta).Put(keyWrites, binary.BigEndian.AppendUint64(nil, writesTx(tx)+1))
}

// putSnapshot writes s whole, as generation gen: its header, and the
// records that differ from the stored ones (the others are not touched).
func putSnapshot(tx *bolt.Tx, s *Snapshot, gen uint64) error {
	if err := putHeader(tx, s, gen); err != nil {
		return err
	}
	if err := syncBucket(tx.Bucket(bucketPublished), s.Published, encodePublished, publishedPutter(tx)); err != nil {
		return err
	}
	return putBounded(tx, s)
}

// putBounded makes the Pending and Departed buckets hold exactly s's.
func putBounded(tx *bolt.Tx, s *Snapshot) error {
	if err := syncBucket(tx.Bucket(bucketPending), s.Pending, marshalJSON, bucketPutter(tx.Bucket(bucketPending))); err != nil {
		return err
	}
	return syncBucket(tx.Bucket(bucketDeparted), s.Departed, marshalJSON, bucketPutter(tx.Bucket(bucketDeparted)))
}

// marshalJSON is json.Marshal for syncBucket: the records of Pending and
// Departed are JSON.
func marshalJSON[V any](v V) ([]byte, error) { return json.Marshal(v) }

// bucketPutter puts raw as k's record in bk, or deletes k when raw is nil.
func bucketPutter(bk *bolt.Bucket) func(k, raw []byte) error {
	return func(k, raw []byte) error {
		if raw == nil {
			return bk.Delete(k)
		}
		return bk.Put(k, raw)
	}
}

// syncBucket makes bk hold exactly want's records, encoded by encode,
// writing (with put: a nil record deletes) only those that changed. Each
// record is encoded and compared with the stored one in turn: only those
// that changed are held until they are written (the pending entries of a
// large directory, with their certificates, are tens of megabytes as
// JSON).
func syncBucket[V any](bk *bolt.Bucket, want map[string]V, encode func(V) ([]byte, error), put func(k, raw []byte) error) error {
	type record struct {
		k   string
		raw []byte
	}
	var changed []record
	for k, v := range want {
		raw, err := encode(v)
		if err != nil {
			return err
		}
		if old := bk.Get([]byte(k)); old == nil || !bytes.Equal(raw, old) {
			changed = append(changed, record{k, raw})
		}
	}
	var drop [][]byte
	err := bk.ForEach(func(k, _ []byte) error {
		if _, ok := want[string(k)]; !ok {
			drop = append(drop, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := put(k, nil); err != nil {
			return err
		}
	}
	// In key order: bbolt fills its pages in order.
	slices.SortFunc(changed, func(a, b record) int { return strings.Compare(a.k, b.k) })
	for _, r := range changed {
		if err := put([]byte(r.k), r.raw); err != nil {
			return err
		}
	}
	return nil
}

// unwritable is err, a failed write of the store, as the State's methods
// return it: an error wrapping ErrLocked as it is (another process has the
// store), anything else wrapping ErrStateUnwritable after what was being
// done.
func unwritable(err error, doing string) error {
	if errors.Is(err, ErrLocked) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrStateUnwritable, doing, err)
}

// Save writes the snapshot, in one transaction, as the next generation:
// its header (the cookie among it) and the records that changed.
func (b *BoltState) Save(ctx context.Context, s *Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	next := s.Generation + 1
	err := b.write(func(db *bolt.DB) error {
		if err := db.Update(func(tx *bolt.Tx) error { return putSnapshot(tx, s, next) }); err != nil {
			return err
		}
		b.shed.committed(db) // it read every record
		return nil
	})
	if err != nil {
		return unwritable(err, "saving "+b.Path)
	}
	s.Generation = next
	return nil
}

// Record notes one acknowledged write in its own transaction, synced
// before it returns (concurrent records are committed together: bbolt's
// Batch). A Published whose Recipient is empty forgets id. It does not
// change the generation, but it counts in the store's count of writes, so
// that a plan made before it is refused ([ErrStalePlan]) by Apply,
// CheckPlan and Plan.WriteTo.
func (b *BoltState) Record(ctx context.Context, id string, p Published) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	raw, err := encodePublished(p)
	if err != nil {
		return err
	}
	err = b.write(func(db *bolt.DB) error {
		defer b.shed.wrote(db, commitTouch(len(raw)))
		return db.Batch(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketDeparted).Delete([]byte(id)); err != nil {
				return err
			}
			// The generation stays: the count of writes tells a plan
			// that this write came after it.
			if err := bumpWrites(tx); err != nil {
				return err
			}
			rec := raw
			if p.forgets() {
				rec = nil
			}
			return putPublished(tx, []byte(id), rec)
		})
	})
	if err != nil {
		return unwritable(err, "recording a write in "+b.Path)
	}
	return nil
}

// prepareRoom is the free space above which Prepare trusts a store it
// opened for writing to take the pass's first commits: far more than one
// commit writes (the freelist of a store of a million records is about
// 150 KB of it).
const prepareRoom = 64 << 20

// Prepare makes sure the store can record writes before Apply's first
// one: it opens the store (refusing a symbolic link at Path, and a file
// or a folder it cannot open for writing: a store opens read-write), and
// then, when the file system is mounted writable and has prepareRoom free
// (Linux, which tells), it is done; otherwise (less room, a system that
// does not tell) it commits a transaction, which fails on a full disk.
// The store open for an Apply (its Lock) thus costs no commit here.
func (b *BoltState) Prepare(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.with(func(db *bolt.DB) error {
		if roomToWrite(filepath.Dir(b.Path), prepareRoom) {
			return nil
		}
		return b.prepareCommit(db)
	})
	if err != nil {
		return unwritable(err, "it cannot record writes")
	}
	return nil
}

// prepareCommit commits a transaction that rewrites the header as it is:
// the commit writes pages and syncs, and so fails where a Record's would
// (a full disk, a file system gone read-only).
func (b *BoltState) prepareCommit(db *bolt.DB) error {
	b.reads.beginWrite()
	defer b.reads.endWrite()
	return db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		return m.Put(keySnapshot, bytes.Clone(m.Get(keySnapshot)))
	})
}
