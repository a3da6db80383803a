package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/smimesync/go-smimesync/internal/atomicfile"
)

// StoreFormat is the marker of a report store: the meta bucket's format
// record is {"format": StoreFormat, "version": StoreVersion}. A bbolt file
// without it (a state store named by mistake) is not a report
// ([ErrNotReport]) and is never written.
const StoreFormat = "smimesync-report-store"

// StoreVersion is the layout of the report store (see store.go and
// record.go).
const StoreVersion = 1

// The layout of a report store (a bbolt file):
//
//	meta                   bucket
//	  format               {"format": StoreFormat, "version": StoreVersion}
//	  order                the sinks' names, as JSON, in the order they came
//	  imported             the SHA-256 of the JSON report imported into the store
//	sinks                  bucket: one bucket per sink, named by it
//	  <sink>               bucket; its sequence numbers the passes merged
//	    header             the sink's header (JSON): LastPass, LastFull, LastGood, Complete, ReadAll
//	    count              how many entry records (8 bytes, big-endian)
//	    entries            bucket: one record per directory entry, keyed by its
//	                       smimesync.EntryDigest (record.go)
//	    expiry             bucket: one empty record per entry that keeps a value
//	                       with an expiry, keyed expiryKey(its last expiry, its key)
//
// The header is written in the last transaction of a merge; count, the
// entries and the index in the same transactions as one another.
var (
	bucketMeta    = []byte("meta")
	bucketSinks   = []byte("sinks")
	bucketEntries = []byte("entries")
	bucketExpiry  = []byte("expiry")
	keyFormat     = []byte("format")
	keyOrder      = []byte("order")
	keyImported   = []byte("imported")
	keyHeader     = []byte("header")
	keyCount      = []byte("count")
)

// batchSize is how many entry records one write transaction of a merge
// writes at most: bbolt holds a transaction's dirty pages in memory until
// it commits, so a merge of a million rows is a few hundred bounded
// commits, not one of a million records.
const batchSize = 2048

// Timeouts of the store's file lock (bbolt's flock: many readers, or one
// writer). A reader waits readTimeout for a pass to finish writing; a
// writer waits writeTimeout for the readers (a `smimesync report` over a
// large report reads for seconds) and a concurrent writer.
var (
	readTimeout  = 5 * time.Second
	writeTimeout = time.Minute
)

// ErrLocked is wrapped by the Store's errors when another process holds
// the store's lock longer than the Store waits for it.
var ErrLocked = errors.New("the report store is locked by another process")

// header is what a store keeps of a sink besides its entries.
type header struct {
	LastPass Pass      `json:"last_pass"`
	LastFull time.Time `json:"last_full,omitzero"`
	LastGood time.Time `json:"last_good,omitzero"`
	Complete bool      `json:"complete"`
	// ReadAll is when the last full pass that named every entry it
	// kept (read with a row, or unlisted) finished: every entry of the
	// sink was read by it, so an entry's Seen reads as the later of its
	// own and this (see Entry.Seen). It spares a full pass that found
	// everything unchanged rewriting every record.
	ReadAll time.Time `json:"read_all,omitzero"`
}

// seen is e's Seen as the header has it (see header.ReadAll).
func (h *header) seen(e *Entry) {
	if h.ReadAll.After(e.Seen) {
		e.Seen = h.ReadAll
	}
}

// storeMarker is the meta bucket's format record.
type storeMarker struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// Options are OpenOptions's settings; the zero value works.
type Options struct {
	// Logger is told of a damaged report set aside and of a JSON report
	// imported; nil discards.
	Logger *slog.Logger
	// Import is a JSON report at another path (an earlier release's
	// default, <state>.report.json) to import once into the store when
	// it exists: the store must not exist yet, or hold that very import.
	// It is then renamed to <Import>.imported-<UTC time>.bak, never
	// deleted. Empty: none.
	Import string
}

// Store keeps a sink's report in an embedded transactional store (a bbolt
// file, go.etcd.io/bbolt), pass after pass: one record per directory entry
// per sink, and a small header per sink. Merging a pass (Record) writes
// what the pass changed, in transactions of at most a few thousand
// records; reading it (Summarize, Search, RecipientsExpiring, Load) goes
// through a cursor, holding only what it lists.
//
// The store is not kept open between calls: Record opens it for writing
// (bbolt's file lock, held only while it merges), every read opens it
// read-only, so that `smimesync report` reads while a service runs. A
// reader that finds the store locked for longer than a few seconds (a pass
// writing), or a writer for longer than a minute, gets an error wrapping
// ErrLocked that names the path.
//
// A Store is safe for concurrent use: its calls take turns.
type Store struct {
	path string
	log  *slog.Logger
	// QuietSaveEvery: a delta pass that changed nothing, read nothing
	// and failed nothing (and followed a pass without error) writes the
	// sink's header only when the store was last written by this Store
	// longer ago than this; until then its LastPass is kept in memory
	// (this Store's reads show it), and Flush writes what is left. 0
	// writes after every pass.
	QuietSaveEvery time.Duration

	mu      sync.Mutex
	saved   time.Time
	known   map[string]header // the headers this Store last wrote
	pending map[string]header // headers of quiet passes not yet written
	// entryWrites counts the entry records written or deleted (for the
	// tests: an unchanged pass writes none).
	entryWrites int
	// missed holds, per sink, what the passes whose merge could not be
	// made said (the store locked past writeTimeout: a long reader):
	// the next merge of the sink notes them in its LastPass.Errors and,
	// unless it is a full pass, leaves the sink not Complete.
	missed map[string][]string
	// readOnly marks a Store of OpenRead; tempDir holds the temporary
	// store it read a JSON report into (removed by Close).
	readOnly bool
	tempDir  string
}

// Open opens the report store at path to keep it up to date (the file is
// created by the first Record; a missing file is an empty report). It is
// OpenOptions with a Logger alone.
func Open(path string, log *slog.Logger) (*Store, error) {
	return OpenOptions(path, Options{Logger: log})
}

// OpenOptions opens the report store at path. What is at the path decides:
//
//   - nothing: an empty report; o.Import, when it names a JSON report that
//     exists, is imported (see Options.Import);
//   - a report store: it is used;
//   - a JSON report of an earlier release (Version 1 or 2): it is
//     converted in place, once: the store replaces it at path, and the
//     JSON is kept as <path>.imported-<UTC time>.bak;
//   - a report of ours that cannot be read (another version, a damaged
//     member or header): it is renamed to <path>.bad (and logged) and
//     started afresh: it only summarises what the passes saw, and the next
//     full pass rebuilds it;
//   - anything else (a file that is not one of our reports, a state store
//     named by mistake): an error wrapping ErrNotReport, and the file is
//     left untouched, as is an existing <path>.bad.
func OpenOptions(path string, o Options) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, log: log, known: map[string]header{}, pending: map[string]header{}}
	if err := s.prepare(o.Import); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// bboltMagic is the magic number of a bbolt file's meta page (little-endian
// on the systems smimesync runs on), at bboltMagicAt.
var bboltMagic = binary.LittleEndian.AppendUint32(nil, 0xED0CDAED)

const bboltMagicAt = 16

// isBolt reports whether the file at path begins as a bbolt file does.
func isBolt(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, bboltMagicAt+len(bboltMagic))
	if _, err := io.ReadFull(f, head); err != nil {
		return false, nil
	}
	return bytes.Equal(head[bboltMagicAt:], bboltMagic), nil
}

// prepare checks what is at s.path (see OpenOptions) and imports legacy.
func (s *Store) prepare(legacy string) error {
	fi, err := os.Lstat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if legacy == "" {
			return nil
		}
		return s.importLegacy(legacy)
	case err != nil:
		return fmt.Errorf("report: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("report: %w: %s: %w", ErrBadReport, s.path, ErrNotReport)
	}
	bolted, err := isBolt(s.path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if !bolted {
		return s.convertInPlace()
	}
	err = s.check()
	switch {
	case err == nil:
	case errors.Is(err, ErrNotReport), errors.Is(err, ErrLocked), !errors.Is(err, ErrBadReport):
		return err
	default:
		if err := s.setAside(err); err != nil {
			return err
		}
		return nil
	}
	if legacy == "" {
		return nil
	}
	return s.importLegacy(legacy)
}

// check reads the store's marker and its sinks' headers: a bbolt file
// without the marker is ErrNotReport (with ErrBadReport); a store of ours
// whose marker or headers do not read is ErrBadReport alone.
func (s *Store) check() error {
	return s.view(func(tx *bolt.Tx) error {
		if tx == nil {
			return nil
		}
		if _, err := readMarker(tx); err != nil {
			return err
		}
		_, err := readHeaders(tx)
		return err
	})
}

// readMarker reads the store's format record.
func readMarker(tx *bolt.Tx) (storeMarker, error) {
	var m storeMarker
	meta := tx.Bucket(bucketMeta)
	if meta == nil || meta.Get(keyFormat) == nil {
		return m, fmt.Errorf("%w: %s: a bbolt file without the %q marker: %w", ErrBadReport, tx.DB().Path(), StoreFormat, ErrNotReport)
	}
	if err := json.Unmarshal(meta.Get(keyFormat), &m); err != nil || m.Format != StoreFormat {
		return m, fmt.Errorf("%w: %s: a bbolt file without the %q marker: %w", ErrBadReport, tx.DB().Path(), StoreFormat, ErrNotReport)
	}
	if m.Version != StoreVersion {
		return m, fmt.Errorf("%w: %s: store version %d, this program reads version %d", ErrBadReport, tx.DB().Path(), m.Version, StoreVersion)
	}
	return m, nil
}

// sinkHeader is one sink's header as read.
type sinkHeader struct {
	name string
	h    header
	b    *bolt.Bucket
}

// readHeaders reads every sink's header, in the order the sinks came.
func readHeaders(tx *bolt.Tx) ([]sinkHeader, error) {
	var order []string
	if raw := tx.Bucket(bucketMeta).Get(keyOrder); raw != nil {
		if err := json.Unmarshal(raw, &order); err != nil {
			return nil, fmt.Errorf("%w: %s: the order of the sinks: %v", ErrBadReport, tx.DB().Path(), err)
		}
	}
	sinks := tx.Bucket(bucketSinks)
	var out []sinkHeader
	for _, name := range order {
		var b *bolt.Bucket
		if sinks != nil {
			b = sinks.Bucket([]byte(name))
		}
		if b == nil || b.Bucket(bucketEntries) == nil || b.Bucket(bucketExpiry) == nil {
			return nil, fmt.Errorf("%w: %s: the sink %q has no buckets", ErrBadReport, tx.DB().Path(), name)
		}
		var h header
		if raw := b.Get(keyHeader); raw != nil {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&h); err != nil {
				return nil, fmt.Errorf("%w: %s: the header of the sink %q: %v", ErrBadReport, tx.DB().Path(), name, err)
			}
		}
		out = append(out, sinkHeader{name, h, b})
	}
	return out, nil
}

// setAside renames a damaged report of ours to <path>.bad, unless that
// exists, and logs it.
func (s *Store) setAside(why error) error {
	bad := s.path + ".bad"
	if _, lerr := os.Lstat(bad); !errors.Is(lerr, fs.ErrNotExist) {
		return fmt.Errorf("report: %w; and it cannot be set aside: %s exists already (move it away)", why, bad)
	}
	if err := os.Rename(s.path, bad); err != nil {
		return fmt.Errorf("report: %w; and setting it aside: %v", why, err)
	}
	s.log.Warn("report set aside, starting a new one", "path", s.path, "as", bad, "err", why)
	return nil
}

// backupName is where an imported JSON report at p is kept.
func backupName(p string) string {
	return p + ".imported-" + time.Now().UTC().Format("20060102T150405Z") + ".bak"
}

// readJSON reads the JSON report at p: its bytes and content.
func readJSON(p string) ([]byte, *File, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("report: %w", err)
	}
	f, err := decode(raw)
	if err != nil {
		return raw, nil, fmt.Errorf("%w: %s: %w", ErrBadReport, p, err)
	}
	return raw, f, nil
}

// convertInPlace replaces the JSON report at s.path with a store holding
// it, keeping the JSON as a backup. The store is built beside it and
// renamed over it: a crash leaves either the JSON report (converted again
// at the next open) or the store, and the backup is written before.
func (s *Store) convertInPlace() error {
	raw, f, err := readJSON(s.path)
	switch {
	case errors.Is(err, ErrNotReport):
		return fmt.Errorf("report: %w", err)
	case errors.Is(err, ErrBadReport):
		return s.setAside(err)
	case err != nil:
		return err
	}
	sum := sha256.Sum256(raw)
	tmp, err := importFile(s.path, f, sum[:])
	if err != nil {
		return err
	}
	bak := backupName(s.path)
	if err := atomicfile.Write(bak, raw, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("report: keeping %s as %s before converting it: %w", s.path, bak, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("report: replacing the JSON report %s with its store: %w", s.path, err)
	}
	syncDir(filepath.Dir(s.path))
	s.log.Info("JSON report converted to a report store", "path", s.path, "backup", bak)
	return nil
}

// importLegacy imports the JSON report legacy, if it exists, into the
// store at s.path, and renames it to a backup.
func (s *Store) importLegacy(legacy string) error {
	raw, f, err := readJSON(legacy)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		// Not a report, or a damaged one: left as it is (the store
		// starts afresh, or goes on).
		s.log.Warn("the earlier JSON report is not imported", "path", legacy, "err", err)
		return nil
	}
	sum := sha256.Sum256(raw)
	if _, err := os.Lstat(s.path); err == nil {
		var done bool
		err := s.view(func(tx *bolt.Tx) error {
			done = tx != nil && bytes.Equal(tx.Bucket(bucketMeta).Get(keyImported), sum[:])
			return nil
		})
		if err != nil {
			return err
		}
		if !done {
			return fmt.Errorf("report: %w: %s holds a report and so does the store %s: move one of them away (nothing was imported)", ErrBadReport, legacy, s.path)
		}
	} else {
		tmp, err := importFile(s.path, f, sum[:])
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, s.path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("report: importing %s into %s: %w", legacy, s.path, err)
		}
	}
	bak := backupName(legacy)
	if err := os.Rename(legacy, bak); err != nil {
		return fmt.Errorf("report: %s was imported into %s but cannot be renamed to a backup: %w", legacy, s.path, err)
	}
	syncDir(filepath.Dir(legacy))
	s.log.Info("JSON report imported into the report store", "path", legacy, "store", s.path, "backup", bak)
	return nil
}

// syncDir makes renames in dir durable, where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// importFile builds a store holding f (sum is the SHA-256 of its JSON,
// noted as imported) beside path, as <path>.importing, in bounded
// transactions, and returns its name: the caller renames it to path, so
// that a crash leaves no half-built store at path (the next open builds
// it again).
func importFile(path string, f *File, sum []byte) (tmp string, err error) {
	tmp = path + ".importing"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("report: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	db, err := openWrite(tmp)
	if err != nil {
		return "", err
	}
	defer db.Close()
	for _, sk := range f.Sinks {
		for chunk := range slices.Chunk(sk.Entries, batchSize) {
			err := db.Update(func(tx *bolt.Tx) error {
				b, err := createSink(tx, sk.Sink)
				if err != nil {
					return err
				}
				for _, e := range chunk {
					if _, err := putEntry(b, entryKey(e.Source, e.ID), 0, e); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return "", fmt.Errorf("report: importing into %s: %w", path, err)
			}
		}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, sk := range f.Sinks {
			b, err := createSink(tx, sk.Sink)
			if err != nil {
				return err
			}
			h := header{LastPass: sk.LastPass, LastFull: sk.LastFull, LastGood: sk.LastGood, Complete: sk.Complete}
			if err := putHeader(b, h); err != nil {
				return err
			}
		}
		if err := putMarker(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyImported, sum)
	})
	if err != nil {
		return "", fmt.Errorf("report: importing into %s: %w", path, err)
	}
	return tmp, db.Close()
}

// putMarker writes the store's format record (and creates the meta and
// sinks buckets).
func putMarker(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketSinks); err != nil {
		return err
	}
	raw, _ := json.Marshal(storeMarker{Format: StoreFormat, Version: StoreVersion})
	return meta.Put(keyFormat, raw)
}

// createSink returns sink's bucket, creating it (and noting the sink in
// the order) if needed.
func createSink(tx *bolt.Tx, sink string) (*bolt.Bucket, error) {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return nil, err
	}
	sinks, err := tx.CreateBucketIfNotExists(bucketSinks)
	if err != nil {
		return nil, err
	}
	if b := sinks.Bucket([]byte(sink)); b != nil {
		return b, nil
	}
	if sink == "" {
		return nil, errors.New("a sink without a name")
	}
	b, err := sinks.CreateBucket([]byte(sink))
	if err != nil {
		return nil, err
	}
	for _, n := range [][]byte{bucketEntries, bucketExpiry} {
		if _, err := b.CreateBucket(n); err != nil {
			return nil, err
		}
	}
	var order []string
	if raw := meta.Get(keyOrder); raw != nil {
		if err := json.Unmarshal(raw, &order); err != nil {
			return nil, err
		}
	}
	raw, _ := json.Marshal(append(order, sink))
	return b, meta.Put(keyOrder, raw)
}

// putHeader writes a sink's header.
func putHeader(b *bolt.Bucket, h header) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return b.Put(keyHeader, raw)
}

// count is the sink's number of entry records.
func countOf(b *bolt.Bucket) int {
	if v := b.Get(keyCount); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

func addCount(b *bolt.Bucket, n int) error {
	if n == 0 {
		return nil
	}
	return b.Put(keyCount, binary.BigEndian.AppendUint64(nil, uint64(max(countOf(b)+n, 0))))
}

// putEntry writes e's record (key key, pass seq) in the sink's bucket b,
// with its expiry index, and counts a new one. It returns the record it
// replaced (nil: none).
func putEntry(b *bolt.Bucket, key []byte, seq uint64, e *Entry) (old []byte, err error) {
	raw, err := encodeRecord(seq, e)
	if err != nil {
		return nil, err
	}
	entries, idx := b.Bucket(bucketEntries), b.Bucket(bucketExpiry)
	if v := entries.Get(key); v != nil {
		old = bytes.Clone(v)
		if tk := recordExpiry(old); tk != nil {
			if err := idx.Delete(expiryKey(tk, key)); err != nil {
				return nil, err
			}
		}
	} else if err := addCount(b, 1); err != nil {
		return nil, err
	}
	if err := entries.Put(key, raw); err != nil {
		return nil, err
	}
	if tk := recordExpiry(raw); tk != nil {
		if err := idx.Put(expiryKey(tk, key), nil); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// deleteEntry deletes the record of key, and its index record.
func deleteEntry(b *bolt.Bucket, key []byte) error {
	entries := b.Bucket(bucketEntries)
	v := entries.Get(key)
	if v == nil {
		return nil
	}
	if tk := recordExpiry(v); tk != nil {
		if err := b.Bucket(bucketExpiry).Delete(expiryKey(tk, key)); err != nil {
			return err
		}
	}
	if err := entries.Delete(key); err != nil {
		return err
	}
	return addCount(b, -1)
}

// openWrite opens (creating it) the store at path for writing.
func openWrite(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: writeTimeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("report: %w: %s (waited %v to write it)", ErrLocked, path, writeTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("report: %w: %s cannot be opened as a store: %v", ErrBadReport, path, err)
	case err != nil:
		return nil, fmt.Errorf("report: opening %s: %w", path, err)
	}
	return db, nil
}

// view runs fn in a read transaction of the store, opened read-only; fn
// gets a nil tx when there is no store yet.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	if _, err := os.Lstat(s.path); errors.Is(err, fs.ErrNotExist) {
		return fn(nil)
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{ReadOnly: true, Timeout: readTimeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("report: %w: %s (a pass is writing it; try again)", ErrLocked, s.path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("report: %w: %s cannot be opened as a store: %v", ErrBadReport, s.path, err)
	case errors.Is(err, fs.ErrNotExist):
		return fn(nil)
	case err != nil:
		return fmt.Errorf("report: opening %s: %w", s.path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if empty(tx) {
			// Created, but nothing committed in it yet.
			return fn(nil)
		}
		return fn(tx)
	})
}

// empty reports whether tx's store has no bucket at all.
func empty(tx *bolt.Tx) bool {
	none := true
	tx.ForEach(func([]byte, *bolt.Bucket) error { none = false; return errStop })
	return none
}
