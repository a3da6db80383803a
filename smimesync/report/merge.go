package report

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/smimesync"
)

// afterBatch, when set (by a test), is called after each batch of rows a
// merge committed.
var afterBatch func()

// errStop ends a bbolt ForEach early.
var errStop = errors.New("stop")

// fullPassDone reports whether a pass read the whole directory and applied
// what it found: only such a pass resets the full-pass schedule. A plan
// the guard stopped, or an apply cancelled, does not count; write failures
// do (the next delta retries them).
func fullPassDone(rep *smimesync.Report, err error) bool {
	return rep != nil && rep.Full && !rep.DryRun &&
		!errors.Is(err, smimesync.ErrGuardTripped) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// pass notes one pass in the header: what Record keeps of it besides its
// rows. rep is nil when planning failed.
func (h *header) pass(command string, rep *smimesync.Report, passErr error, now time.Time) {
	h.LastPass = Pass{Command: command, Finished: now}
	if passErr != nil {
		h.LastPass.Error = passErr.Error()
	}
	if rep == nil {
		return
	}
	h.LastPass.Full = rep.Full
	h.LastPass.Started = rep.Started
	h.LastPass.Finished = cmp.Or(rep.Finished, now)
	h.LastPass.Summary = rep.Summary
	h.LastPass.CookieAdvanced = rep.CookieAdvanced
	h.LastPass.Errors = rep.Errors
	if passErr == nil {
		h.LastGood = h.LastPass.Finished
	}
	if fullPassDone(rep, passErr) {
		h.LastFull = h.LastPass.Finished
	}
}

// entryOf is what the report keeps of c, read by a pass that finished at
// seen.
func entryOf(c *smimesync.Change, seen time.Time) *Entry {
	e := &Entry{
		ID: c.ID, User: c.User, DN: c.DN, Source: c.Source,
		Action: c.Action, Reason: c.Reason, Detail: c.Detail, Outcome: c.Outcome, Error: c.Error,
		Keep: c.Keep, Drop: c.Drop, Seen: seen,
	}
	if c.Recipient != nil {
		e.Recipient = cmp.Or(c.Recipient.Name, c.Recipient.ID)
	}
	return e
}

// hasRows reports whether the pass has a row (an entry that was not only
// counted).
func hasRows(rep *smimesync.Report) bool {
	for range rep.Rows() {
		return true
	}
	return false
}

// Record merges one pass of sink into the report store. command names
// what ran the pass ("sync", "run"); rep is nil when planning failed; a
// dry run's report is not recorded (it wrote nothing).
//
// The merge writes the pass's rows (rep.Rows: the entries that changed,
// or that a full pass judged again), in transactions of at most a few
// thousand records; an entry deleted from the directory loses its record.
// A memoized row (smimesync.Change.Memoized) keeps the Keep and Drop of
// the entry's record (looked up alone). An unlisted entry (rep.Unlisted:
// read, unchanged) keeps its record: a delta pass notes that it read it
// (Seen) on its record; a full pass writes none, its header notes that it
// read every entry it kept (header.ReadAll), and neither does it rewrite
// a record its row repeats but for Seen (it keeps the 16-byte keys of
// those rows in memory until the walk). A full pass then drops the
// entries it did not name: it walks the keys of the sink's records
// (and the 8 bytes that say which pass wrote each) alongside the pass's
// unlisted digests (smimesync.Plan.UnlistedDigests, sorted as the keys
// are), without decoding a record, and deletes those it did not name.
// The engine's keys of the entries its state forgot would spare the walk,
// but they name only the entries the state held, and only in the pass
// that forgot them: a pass whose merge did not happen (a crash, a report
// set aside, a report newer than the state) would leave their entries in
// the report for good, where the walk drops them at the next full pass.
//
// The sink's header (LastPass, LastFull, LastGood, Complete) is written
// in the last transaction. A crash during a merge leaves a store that
// opens and reads, with the header of the pass before and the batches of
// this one that committed: some of its rows merged, and for a full pass
// maybe some departed entries dropped. The next full pass makes it whole.
//
// A quiet delta may wait for QuietSaveEvery (see there).
func (s *Store) Record(sink, command string, rep *smimesync.Report, passErr error, finished time.Time) error {
	if rep != nil && rep.DryRun {
		return nil
	}
	if s.readOnly {
		return fmt.Errorf("%w: %s", ErrReadOnly, s.path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := finished.UTC()
	quiet := rep != nil && passErr == nil && !rep.Full && rep.UnlistedCount() == 0 && !hasRows(rep) && len(s.missed[sink]) == 0
	if h, ok := s.cached(sink); ok && quiet && h.LastPass.Error == "" && finished.Sub(s.saved) < s.QuietSaveEvery {
		h.pass(command, rep, nil, now)
		s.pending[sink] = h
		return nil
	}
	db, err := s.openWrite()
	if err != nil {
		if errors.Is(err, ErrLocked) {
			// The pass's rows are lost to the report (the pass's
			// own report is closed after it): say so at the next
			// merge, which a full pass makes whole again.
			if s.missed == nil {
				s.missed = map[string][]string{}
			}
			s.missed[sink] = append(s.missed[sink], fmt.Sprintf("the %s pass that finished at %s is missing from the report: %v", command, stamp(now), err))
		}
		return err
	}
	if err := s.merge(db, sink, command, rep, passErr, now); err != nil {
		db.Close()
		return err
	}
	delete(s.missed, sink)
	if err := db.Close(); err != nil {
		return fmt.Errorf("report: closing %s: %w", s.path, err)
	}
	s.saved = finished
	return nil
}

// cached is sink's header as this Store last wrote it, with a quiet pass
// not yet written: ok is false when the Store has not written the sink.
func (s *Store) cached(sink string) (header, bool) {
	if h, ok := s.pending[sink]; ok {
		return h, true
	}
	h, ok := s.known[sink]
	return h, ok
}

// merge merges the pass into the open store db (see Record).
func (s *Store) merge(db *bolt.DB, sink, command string, rep *smimesync.Report, passErr error, now time.Time) error {
	var h header
	var seq uint64
	err := db.Update(func(tx *bolt.Tx) error {
		if !empty(tx) {
			if _, err := readMarker(tx); err != nil {
				return err
			}
		}
		if err := putMarker(tx); err != nil {
			return err
		}
		b, err := createSink(tx, sink)
		if err != nil {
			return err
		}
		if p, ok := s.pending[sink]; ok {
			h = p
		} else if raw := b.Get(keyHeader); raw != nil {
			hs, err := readHeaders(tx)
			if err != nil {
				return err
			}
			for _, x := range hs {
				if x.name == sink {
					h = x.h
				}
			}
		}
		seq, err = b.NextSequence()
		return err
	})
	if err != nil {
		return fmt.Errorf("report: merging a pass of %s into %s: %w", sink, s.path, err)
	}
	h.pass(command, rep, passErr, now)
	if rep != nil {
		if err := s.mergeEntries(db, sink, seq, rep, &h); err != nil {
			return fmt.Errorf("report: merging a pass of %s into %s: %w", sink, s.path, err)
		}
	}
	if missed := s.missed[sink]; len(missed) > 0 {
		h.LastPass.Errors = append(h.LastPass.Errors, missed...)
		if !fullPassDone(rep, passErr) {
			// A delta's rows were not merged: the entries they
			// changed are stale until a full pass.
			h.Complete = false
		}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := putHeader(tx.Bucket(bucketSinks).Bucket([]byte(sink)), h); err != nil {
			return err
		}
		// The quiet passes of other sinks waiting in memory go too.
		return s.putPending(tx, sink)
	})
	if err != nil {
		return fmt.Errorf("report: writing the pass of %s into %s: %w", sink, s.path, err)
	}
	for name, p := range s.pending {
		s.known[name] = p
	}
	clear(s.pending)
	s.known[sink] = h
	return nil
}

// mergeEntries writes the pass's rows, notes its unlisted entries and, for
// a full pass, drops what it did not name (see Record); it completes h.
func (s *Store) mergeEntries(db *bolt.DB, sink string, seq uint64, rep *smimesync.Report, h *header) error {
	seen := h.LastPass.Finished
	// same holds the keys of a full pass's rows whose records were
	// left as they were (the row says what the record says), sorted
	// after the rows: the walk counts them as the pass's.
	var same []smimesync.EntryDigest
	batch := make([]*smimesync.Change, 0, batchSize)
	write := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSinks).Bucket([]byte(sink))
			for _, c := range batch {
				kept, err := s.putRow(b, seq, c, seen, rep.Full)
				if err != nil {
					return err
				}
				if kept {
					same = append(same, smimesync.DigestEntry(c.Source, c.ID))
				}
			}
			return nil
		})
		batch = batch[:0]
		if err == nil && afterBatch != nil {
			afterBatch()
		}
		return err
	}
	var rowErr error
	for c, err := range rep.Rows() {
		if err != nil {
			// The rows that could not be read keep their earlier word.
			rowErr = err
			h.LastPass.Errors = append(h.LastPass.Errors, "reading the pass's rows: "+err.Error())
			break
		}
		if batch = append(batch, c); len(batch) == batchSize {
			if err := write(); err != nil {
				return err
			}
		}
	}
	if err := write(); err != nil {
		return err
	}
	switch {
	case rep.Full:
		// A full read names every entry in scope, with a row or as
		// unlisted: what it does not name is gone, unless its rows
		// could not all be read. The records cover them all unless an
		// unlisted one has none (the report is newer than its memo): it
		// has none until a pass judges it again (within
		// Syncer.Reverify).
		slices.SortFunc(same, func(a, b smimesync.EntryDigest) int { return bytes.Compare(a[:], b[:]) })
		n, err := s.walkFull(db, sink, seq, rep, same, rowErr == nil, seen)
		if err != nil {
			return err
		}
		if rowErr != nil {
			// The pass's Seen is not the header's: the records
			// left as they were get it.
			if err := s.touch(db, sink, seq, slices.Values(same), seen); err != nil {
				return err
			}
		}
		h.Complete = n == rep.UnlistedCount()
		if rowErr == nil {
			h.ReadAll = seen
		}
	case rep.UnlistedCount() > 0:
		if err := s.touch(db, sink, seq, rep.UnlistedDigests(), seen); err != nil {
			return err
		}
	}
	return nil
}

// putRow merges one row into the sink's bucket b. In a full pass (full),
// a row that says what the entry's record says but for Seen leaves the
// record as it is (kept: the header's ReadAll gives it the pass's Seen):
// most rows of a full pass over a quiet directory are such (entries
// without a recipient, without a certificate, taken on trust from their
// memos), and rewriting them would dirty most pages of the store.
func (s *Store) putRow(b *bolt.Bucket, seq uint64, c *smimesync.Change, seen time.Time, full bool) (kept bool, err error) {
	key := entryKey(c.Source, c.ID)
	if c.Action == smimesync.ActionSkip && c.Reason == smimesync.SkipDeleted {
		s.entryWrites++
		return false, deleteEntry(b, key)
	}
	e := entryOf(c, seen)
	var old *record
	if v := b.Bucket(bucketEntries).Get(key); v != nil && (c.Memoized || full) {
		if r, err := decodeRecord(v); err == nil {
			old = &r
		}
	}
	if c.Memoized {
		// The memo stands for the values: the earlier word on them
		// is the record's, when it has one.
		e.Unjudged = true
		if old != nil && !old.entry.Unjudged {
			e.Keep, e.Drop, e.Unjudged = old.entry.Keep, old.entry.Drop, false
		}
	}
	if full && old != nil && sameEntry(old.entry, e) {
		return true, nil
	}
	s.entryWrites++
	_, err = putEntry(b, key, seq, e)
	return false, err
}

// sameEntry reports whether the record's entry a says what b says, but
// for Seen (compared as the store encodes them).
func sameEntry(a, b *Entry) bool {
	x, y := *a, *b
	x.Seen, y.Seen = time.Time{}, time.Time{}
	ja, err1 := json.Marshal(&x)
	jb, err2 := json.Marshal(&y)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// walkFull walks the keys of the sink's records alongside the pass's
// unlisted digests and same (the keys of its rows that left their records
// as they were, sorted): a record neither this pass wrote (seq) nor named
// (same) nor listed as unlisted is deleted when drop is set; when it is
// not (the pass's rows could not all be read), the unlisted records get
// seen as their Seen. It returns how many records the pass listed as
// unlisted. It decodes no record, and deletes (or rewrites) at most
// batchSize records a transaction.
func (s *Store) walkFull(db *bolt.DB, sink string, seq uint64, rep *smimesync.Report, same []smimesync.EntryDigest, drop bool, seen time.Time) (int, error) {
	next, stop := iter.Pull(rep.UnlistedDigests())
	defer stop()
	cur, more := next()
	listed := 0
	var resume []byte
	for {
		var act [][]byte // to delete (drop) or touch (!drop)
		done := true
		err := db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSinks).Bucket([]byte(sink)).Bucket(bucketEntries).Cursor()
			k, v := c.First()
			if resume != nil {
				k, v = c.Seek(resume)
			}
			for ; k != nil; k, v = c.Next() {
				if len(act) == batchSize {
					resume, done = bytes.Clone(k), false
					return nil
				}
				for more && bytes.Compare(cur[:], k) < 0 {
					cur, more = next()
				}
				named := more && bytes.Equal(cur[:], k)
				for len(same) > 0 && bytes.Compare(same[0][:], k) < 0 {
					same = same[1:]
				}
				switch {
				case recordSeq(v) == seq, len(same) > 0 && bytes.Equal(same[0][:], k):
					// This pass's row.
				case named:
					listed++
					if !drop {
						act = append(act, bytes.Clone(k))
					}
				case drop:
					act = append(act, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if len(act) > 0 {
			var err error
			if drop {
				err = db.Update(func(tx *bolt.Tx) error {
					b := tx.Bucket(bucketSinks).Bucket([]byte(sink))
					for _, k := range act {
						s.entryWrites++
						if err := deleteEntry(b, k); err != nil {
							return err
						}
					}
					return nil
				})
			} else {
				err = s.touch(db, sink, seq, func(yield func(smimesync.EntryDigest) bool) {
					for _, k := range act {
						if !yield(smimesync.EntryDigest(k)) {
							return
						}
					}
				}, seen)
			}
			if err != nil {
				return 0, err
			}
		}
		if done {
			return listed, nil
		}
	}
}

// touch gives the records of keys that this pass (seq) did not write
// seen as their Seen: the pass read them, and found them unchanged. A key
// without a record is left so. It writes at most batchSize records a
// transaction.
func (s *Store) touch(db *bolt.DB, sink string, seq uint64, keys iter.Seq[smimesync.EntryDigest], seen time.Time) error {
	batch := make([][]byte, 0, batchSize)
	write := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSinks).Bucket([]byte(sink))
			for _, k := range batch {
				v := b.Bucket(bucketEntries).Get(k)
				if v == nil || recordSeq(v) == seq {
					continue
				}
				r, err := decodeRecord(v)
				if err != nil {
					// A damaged record: the pass read the entry
					// unchanged, but the report has no word on it.
					s.log.Warn("a damaged report record is dropped", "path", s.path, "sink", sink, "err", err)
					s.entryWrites++
					if err := deleteEntry(b, k); err != nil {
						return err
					}
					continue
				}
				r.entry.Seen = seen
				s.entryWrites++
				if _, err := putEntry(b, k, r.seq, r.entry); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	for d := range keys {
		if batch = append(batch, bytes.Clone(d[:])); len(batch) == batchSize {
			if err := write(); err != nil {
				return err
			}
		}
	}
	return write()
}

// Flush writes the headers of the quiet passes Record kept in memory (see
// QuietSaveEvery).
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	db, err := s.openWrite()
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if !empty(tx) {
			if _, err := readMarker(tx); err != nil {
				return err
			}
		}
		if err := putMarker(tx); err != nil {
			return err
		}
		return s.putPending(tx)
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("report: writing %s: %w", s.path, err)
	}
	for name, h := range s.pending {
		s.known[name] = h
	}
	clear(s.pending)
	return nil
}

// openWrite opens the store for writing: only a store, or nothing (a
// file that is not a bbolt file is not replaced: ErrNotReport; bbolt would
// lay a store over an empty one).
func (s *Store) openWrite() (*bolt.DB, error) {
	if s.readOnly {
		return nil, fmt.Errorf("%w: %s", ErrReadOnly, s.path)
	}
	fi, err := os.Lstat(s.path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("report: %w: %s: %w", ErrBadReport, s.path, ErrNotReport)
	case err == nil:
		if ok, err := isBolt(s.path); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		} else if !ok {
			return nil, fmt.Errorf("report: %w: %s: %w", ErrBadReport, s.path, ErrNotReport)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("report: %w", err)
	}
	return openWrite(s.path)
}

// putPending writes in tx the headers of the quiet passes waiting in
// memory (s.pending), but for the sinks named in except. The caller holds
// s.mu.
func (s *Store) putPending(tx *bolt.Tx, except ...string) error {
	for name, h := range s.pending {
		if slices.Contains(except, name) {
			continue
		}
		b, err := createSink(tx, name)
		if err != nil {
			return err
		}
		if err := putHeader(b, h); err != nil {
			return err
		}
	}
	return nil
}
