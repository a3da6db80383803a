package report

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sinks reads the headers of the store's sinks in tx (nil: no store), in
// the order they came, with the quiet passes this Store holds in memory
// laid over them. The caller holds s.mu.
func (s *Store) sinks(tx *bolt.Tx) ([]sinkHeader, error) {
	var hs []sinkHeader
	if tx != nil {
		if _, err := readMarker(tx); err != nil {
			return nil, err
		}
		var err error
		if hs, err = readHeaders(tx); err != nil {
			return nil, err
		}
	}
	for name, p := range s.pending {
		i := slices.IndexFunc(hs, func(x sinkHeader) bool { return x.name == name })
		if i < 0 {
			hs = append(hs, sinkHeader{name: name})
			i = len(hs) - 1
		}
		hs[i].h = p
	}
	return hs, nil
}

// entries calls fn with every entry of the sink (bucket b, header h), in
// the order of its keys, each decoded afresh. It stops at fn's error. A
// record that does not decode (damaged, or another release's) is skipped,
// logged and counted in damaged: one such record must not keep every
// reader from the report; the entry's next row replaces it.
func (s *Store) entries(name string, sh sinkHeader, fn func(e *Entry) error) (damaged int, err error) {
	if sh.b == nil {
		return 0, nil
	}
	c := sh.b.Bucket(bucketEntries).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, err := decodeRecord(v)
		if err != nil {
			damaged++
			s.log.Warn("report: a record does not read; skipped", "path", s.path, "sink", name,
				"record", fmt.Sprintf("%x", k), "err", err)
			continue
		}
		sh.h.seen(r.entry)
		if err := fn(r.entry); err != nil {
			return damaged, err
		}
	}
	return damaged, nil
}

// Load reads the whole report into memory, each sink's entries sorted by
// user, then source, then ID: a convenience for small reports and tests
// (Summarize and Search read a large one).
func (s *Store) Load() (*File, error) {
	s.lock()
	defer s.unlock()
	f := &File{Format: Format, Version: Version, Sinks: []*Sink{}}
	err := s.view(func(tx *bolt.Tx) error {
		hs, err := s.sinks(tx)
		if err != nil {
			return err
		}
		for _, sh := range hs {
			sk := &Sink{Sink: sh.name, LastPass: sh.h.LastPass, LastFull: sh.h.LastFull, LastGood: sh.h.LastGood,
				Complete: sh.h.Complete, Entries: []*Entry{}}
			_, err := s.entries(sh.name, sh, func(e *Entry) error {
				sk.Entries = append(sk.Entries, e)
				return nil
			})
			if err != nil {
				return err
			}
			slices.SortFunc(sk.Entries, func(a, b *Entry) int { return compareRefs(a.ref(), b.ref()) })
			if sk.LastPass.Finished.After(f.Updated) {
				f.Updated = sk.LastPass.Finished
			}
			f.Sinks = append(f.Sinks, sk)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ref names e in the report's lists.
func (e *Entry) ref() UserRef {
	return UserRef{User: e.User, ID: e.ID, DN: e.DN, Source: e.Source, Recipient: e.Recipient}
}

// Summarize reads the report through a cursor and turns it into the lists
// people read (see the package function Summarize, whose output it is
// for the same content), holding only what it lists. file is what the
// summary names as its file.
func (s *Store) Summarize(file string, now time.Time, withinDays int) (*Summary, error) {
	s.lock()
	defer s.unlock()
	out := &Summary{File: file, At: now.UTC(), WithinDays: withinDays, Sinks: []SinkSummary{}}
	err := s.view(func(tx *bolt.Tx) error {
		hs, err := s.sinks(tx)
		if err != nil {
			return err
		}
		for _, sh := range hs {
			ss := newSinkSummary(sh.name, sh.h)
			damaged, err := s.entries(sh.name, sh, func(e *Entry) error {
				ss.add(e, now, withinDays)
				return nil
			})
			if err != nil {
				return err
			}
			if ss.Damaged = damaged; damaged > 0 {
				ss.Complete = false
			}
			ss.finish()
			out.Sinks = append(out.Sinks, ss)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Found is an entry Search found, and its sink.
type Found struct {
	Sink  string
	Entry *Entry
}

// Search reads the report through a cursor and returns the entries match
// accepts, at most limit of them: the first in the report's order (the
// sinks in the order they came, each sink's entries by user, then source,
// then ID); more is how many others it accepted. It holds at most limit
// entries.
func (s *Store) Search(match func(sink string, e *Entry) bool, limit int) (found []Found, more int, err error) {
	s.lock()
	defer s.unlock()
	err = s.view(func(tx *bolt.Tx) error {
		hs, err := s.sinks(tx)
		if err != nil {
			return err
		}
		for _, sh := range hs {
			room := limit - len(found)
			var best []*Entry // the first room accepted, in order
			_, err := s.entries(sh.name, sh, func(e *Entry) error {
				if !match(sh.name, e) {
					return nil
				}
				i, _ := slices.BinarySearchFunc(best, e, func(a, b *Entry) int { return compareRefs(a.ref(), b.ref()) })
				if i >= room {
					more++
					return nil
				}
				best = slices.Insert(best, i, e)
				if len(best) > room {
					best = best[:room]
					more++
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, e := range best {
				found = append(found, Found{sh.name, e})
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return found, more, nil
}

// Expiries calls fn with the latest expiry of the kept values of every
// entry of sink that keeps a value with an expiry, in the order of those
// expiries (see RecipientsExpiring). It reads the expiry index, no entry.
func (s *Store) Expiries(sink string, fn func(last time.Time)) error {
	s.lock()
	defer s.unlock()
	return s.view(func(tx *bolt.Tx) error {
		idx := expiryIndex(tx, sink)
		if idx == nil {
			return nil
		}
		c := idx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			t, err := timeFromKey(k)
			if err != nil {
				return fmt.Errorf("%w: %s: sink %q, index record %x: %w", ErrBadReport, s.path, sink, k, err)
			}
			fn(t)
		}
		return nil
	})
}

// expiryIndex is sink's expiry index in tx (nil: none).
func expiryIndex(tx *bolt.Tx, sink string) *bolt.Bucket {
	if tx == nil || tx.Bucket(bucketSinks) == nil {
		return nil
	}
	b := tx.Bucket(bucketSinks).Bucket([]byte(sink))
	if b == nil {
		return nil
	}
	return b.Bucket(bucketExpiry)
}

// RecipientsExpiring counts sink's entries whose kept certificates all
// expire before horizon: the entries that lose their last usable
// certificate by then unless a renewed one reaches the directory. An
// entry that keeps nothing, or only values without an expiry, is not
// counted (it has no usable certificate to lose). It counts the expiry
// index's records up to horizon, without reading an entry; a store it
// cannot read counts 0 (and is logged).
func (s *Store) RecipientsExpiring(sink string, horizon time.Time) int {
	s.lock()
	defer s.unlock()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		idx := expiryIndex(tx, sink)
		if idx == nil {
			return nil
		}
		end := timeKey(horizon)
		c := idx.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:min(len(k), timeKeyLen)], end) < 0; k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		s.log.Error("counting the recipients whose certificates expire", "sink", sink, "err", err)
		return 0
	}
	return n
}

// LastFull is when the report last saw a full pass of sink applied whole
// (zero when never, or when the store cannot be read: that is logged).
func (s *Store) LastFull(sink string) time.Time {
	s.lock()
	defer s.unlock()
	if h, ok := s.cached(sink); ok {
		return h.LastFull
	}
	var t time.Time
	err := s.view(func(tx *bolt.Tx) error {
		hs, err := s.sinks(tx)
		for _, sh := range hs {
			if sh.name == sink {
				t = sh.h.LastFull
			}
		}
		return err
	})
	if err != nil {
		s.log.Error("reading the report's last full pass", "sink", sink, "err", err)
	}
	return t
}

func (s *Store) lock()   { s.mu.Lock() }
func (s *Store) unlock() { s.mu.Unlock() }
