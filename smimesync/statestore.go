package smimesync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// A RecordStore is a [State] that keeps one record per directory entry and
// can be read and saved a part at a time, so that a pass costs what it
// touches, not what the directory holds: a delta pass reads the header
// (cookie, times, generation, Pending and Departed, which MaxPending and
// MaxDeparted bound), looks up the few records its changes need, and saves
// the header with the records that changed. [BoltState] and [MemoryState]
// are RecordStores; [FileState] is not (its file is one JSON document).
//
// When its State is a RecordStore, the Syncer uses it instead of Load and
// Save: Plan reads through a [StateView], Apply saves with SaveChanges
// (the cookie still only when a pass ends well), and a full pass goes
// through the records with EachPublished rather than holding them in a
// map. Load and Save still work whole, for programs that read or write the
// snapshot themselves, and Apply of a plan read by [ReadPlan] uses them.
//
// A State that wraps a RecordStore (by embedding it) and changes how it
// saves must change SaveChanges as well as Save: the Syncer calls only
// SaveChanges on a RecordStore.
type RecordStore interface {
	State
	// View opens the saved state for reading, until the view's Close.
	// Reads through it see what is saved at the time of each read
	// (records a [Recorder] notes included).
	View(ctx context.Context) (StateView, error)
	// SaveChanges saves, atomically, as the next generation
	// (head.Generation+1, which it sets in head on success, as Save
	// does): head's header (version, cookie, times), its Pending and
	// Departed whole, and the Published records of changes, one per key;
	// a Published whose Recipient is empty removes its key, as for
	// [Recorder.Record]. Records not in changes stay as they are, those
	// a Recorder noted included: Apply does not repeat in changes the
	// writes Record acknowledged. Apply may call it more than once (every
	// few thousand changed records, with the header as it stands then).
	// head.Published is not read.
	SaveChanges(ctx context.Context, head *Snapshot, changes map[string]Published) error
}

// A StateView reads a [RecordStore]'s saved state a part at a time. It is
// safe for concurrent use.
type StateView interface {
	// Header returns the saved snapshot without its Published records
	// (Published is empty, not nil): version, cookie, times, generation,
	// Pending and Departed. The views of [BoltState] and [MemoryState]
	// also note in it, unexported, the store's count of writes (every
	// Record, Save and SaveChanges), read with the header: Apply,
	// [Syncer.CheckPlan] and [Plan.WriteTo] refuse a plan ([ErrStalePlan])
	// when it moved since the plan, so that a write recorded (by an apply
	// that died before saving) after a plan was made, at the same
	// generation, is not taken for the state the plan read. A view of
	// another package cannot note it: a plan over it is checked by the
	// generation alone.
	Header(ctx context.Context) (*Snapshot, error)
	// Published returns the saved record of key, and whether there is one.
	Published(ctx context.Context, key string) (Published, bool, error)
	// EachPublished calls fn for every saved record, in the byte order of
	// the keys, and stops at fn's first error, which it returns. fn must
	// not write to the store. When skip is not nil, the records of the
	// keys it reports true for are passed over, not decoded: a full pass
	// walks the records only for those of the entries the directory no
	// longer holds.
	EachPublished(ctx context.Context, skip func(key string) bool, fn func(key string, p Published) error) error
	// Holders returns, in key order, the keys whose saved record names
	// the recipient.
	Holders(ctx context.Context, recipient string) ([]string, error)
	// Close ends the view; it must be called once.
	Close() error
}

var (
	_ RecordStore = (*BoltState)(nil)
	_ RecordStore = (*MemoryState)(nil)
)

// --- BoltState ---

// holderKey is the key of bucketHolders for the record of key naming
// recipient: the first 8 bytes of the recipient's SHA-256, then the key.
// (Holders checks each key against its record, so that two recipients
// sharing 8 bytes of hash are told apart; the short prefix keeps the
// index small.)
func holderKey(recipient string, key []byte) []byte {
	sum := sha256.Sum256([]byte(recipient))
	return append(sum[:8:8], key...)
}

// holderPrefix is the prefix of recipient's keys in bucketHolders.
func holderPrefix(recipient string) []byte { return holderKey(recipient, nil) }

// recipientOf is the Recipient of a stored record ("" when it cannot be
// decoded: such a record has no index entry to remove).
func recipientOf(raw []byte) string { return recordRecipient(raw) }

// putPublished puts raw as the Published record of key (nil deletes it),
// and keeps bucketHolders in step, in tx.
func putPublished(tx *bolt.Tx, key, raw []byte) error {
	pub, idx := tx.Bucket(bucketPublished), tx.Bucket(bucketHolders)
	old := pub.Get(key)
	was, now := "", ""
	if old != nil {
		was = recipientOf(old)
	}
	if raw != nil {
		now = recipientOf(raw)
	}
	if old != nil && (raw == nil || was != now) {
		if err := idx.Delete(holderKey(was, key)); err != nil {
			return err
		}
	}
	if raw == nil {
		return pub.Delete(key)
	}
	if old == nil || was != now {
		// A record of the same recipient (a renewal) has its entry.
		if err := idx.Put(holderKey(now, key), []byte{}); err != nil {
			return err
		}
	}
	return pub.Put(key, raw)
}

// publishedPutter is putPublished in tx, for syncBucket.
func publishedPutter(tx *bolt.Tx) func(k, raw []byte) error {
	return func(k, raw []byte) error { return putPublished(tx, k, raw) }
}

// mendHolders rebuilds bucketHolders when it is missing or was not written
// with the header of generation gen (a release without the index saved
// the store since).
func (b *BoltState) mendHolders(db *bolt.DB, gen uint64) error {
	fresh := false
	db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta).Get(keyHolders)
		fresh = tx.Bucket(bucketHolders) != nil && len(m) == 8 && binary.BigEndian.Uint64(m) == gen
		return nil
	})
	if fresh {
		return nil
	}
	err := db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketHolders) != nil {
			if err := tx.DeleteBucket(bucketHolders); err != nil {
				return err
			}
		}
		idx, err := tx.CreateBucket(bucketHolders)
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketPublished).ForEach(func(k, v []byte) error {
			return idx.Put(holderKey(recipientOf(v), k), []byte{})
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyHolders, binary.BigEndian.AppendUint64(nil, gen))
	})
	if err != nil {
		return fmt.Errorf("%w: indexing the state store %s: %w", ErrStateUnwritable, b.Path, err)
	}
	b.shed.committed(db) // it read every record
	return nil
}

// View opens the store (it stays open, and its file locked, until the
// view's Close) and returns a view of it. Each read is a read transaction
// of its own.
func (b *BoltState) View(ctx context.Context) (StateView, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := b.acquire()
	if err != nil {
		return nil, err
	}
	return &boltView{b: b, db: db}, nil
}

// boltView is a BoltState's StateView.
type boltView struct {
	b    *BoltState
	db   *bolt.DB
	once sync.Once
}

func (v *boltView) Header(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *Snapshot
	err := v.db.View(func(tx *bolt.Tx) (err error) {
		s, err = loadHeaderTx(tx)
		if err == nil {
			s.writes = writesTx(tx)
		}
		v.b.shed.touch(tx, lookupTouch(0))
		return err
	})
	return s, err
}

func (v *boltView) Published(ctx context.Context, key string) (p Published, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return p, false, err
	}
	// A transaction kept from an earlier read (see store_readtx.go): a
	// pass reads the record of every entry it takes on its memo.
	err = v.b.read(v.db, func(t *readTx) error {
		raw := t.get(bucketPublished, []byte(key))
		v.b.shed.touch(t.tx, lookupTouch(len(raw)))
		if raw == nil {
			return nil
		}
		ok = true
		p, err = decodePublished(key, raw) // the key as it is: converted, it would be allocated
		return err
	})
	return p, ok, err
}

func (v *boltView) EachPublished(ctx context.Context, skip func(key string) bool, fn func(key string, p Published) error) error {
	return v.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPublished).Cursor()
		for k, raw := c.First(); k != nil; k, raw = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if skip != nil && skip(string(k)) {
				v.b.shed.touch(tx, walkTouch(len(k), 0))
				continue
			}
			v.b.shed.touch(tx, walkTouch(len(k), len(raw)))
			p, err := decodePublished(k, raw)
			if err != nil {
				return err
			}
			if err := fn(string(k), p); err != nil {
				return err
			}
		}
		return nil
	})
}

// Holders reads the index, and checks each key it gives against the
// record itself: an index entry left behind by a write the index missed
// names no holder.
func (v *boltView) Holders(ctx context.Context, recipient string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []string
	// A transaction kept from an earlier read (see store_readtx.go): a
	// full pass asks about every recipient of its rows.
	err := v.b.read(v.db, func(t *readTx) error {
		prefix := holderPrefix(recipient)
		c := t.cursor(bucketHolders)
		v.b.shed.touch(t.tx, lookupTouch(0))
		if c == nil {
			return nil
		}
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			key := k[len(prefix):]
			raw := t.get(bucketPublished, key)
			v.b.shed.touch(t.tx, lookupTouch(len(raw)))
			if raw != nil && recipientOf(raw) == recipient {
				keys = append(keys, string(key))
			}
		}
		return nil
	})
	return keys, err
}

func (v *boltView) Close() error {
	err := errors.New("smimesync: the state view was closed already")
	v.once.Do(func() { err = v.b.release() })
	return err
}

// SaveChanges writes, in one transaction, the header as the next
// generation, Pending and Departed, and the records in changes (with
// their index entries).
func (b *BoltState) SaveChanges(ctx context.Context, head *Snapshot, changes map[string]Published) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	next := head.Generation + 1
	enc := make(map[string][]byte, len(changes))
	for k, p := range changes {
		if p.forgets() {
			enc[k] = nil
			continue
		}
		raw, err := encodePublished(p)
		if err != nil {
			return err
		}
		enc[k] = raw
	}
	err := b.write(func(db *bolt.DB) error {
		defer b.shed.committed(db) // after the commit: it read the records it wrote
		return db.Update(func(tx *bolt.Tx) error {
			if err := putHeader(tx, head, next); err != nil {
				return err
			}
			if err := putBounded(tx, head); err != nil {
				return err
			}
			pub := tx.Bucket(bucketPublished)
			for _, k := range slices.Sorted(maps.Keys(enc)) {
				raw := enc[k]
				if old := pub.Get([]byte(k)); (raw == nil && old == nil) || (raw != nil && bytes.Equal(old, raw)) {
					continue // as saved: a Record wrote it
				}
				if err := putPublished(tx, []byte(k), raw); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return unwritable(err, "saving "+b.Path)
	}
	head.Generation = next
	return nil
}

// --- MemoryState ---

// View returns a view of the saved snapshot. A MemoryState keeps its
// snapshot encoded whole; its views decode it once per saved version (on
// the first read after a Save or SaveChanges), with an index of the keys
// in order and of the holders of each recipient, so that a pass's reads
// cost what they read. What a view returns is a copy: changing it changes
// neither the saved snapshot nor what the next read returns.
func (m *MemoryState) View(ctx context.Context) (StateView, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &memoryView{m: m}, nil
}

// SaveChanges lays head and changes over the saved snapshot.
func (m *MemoryState) SaveChanges(ctx context.Context, head *Snapshot, changes map[string]Published) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var pub map[string]Published
	if m.dec != nil {
		// A view decoded it: no need to again. (m.dec is never changed.)
		pub = maps.Clone(m.dec.pub)
	} else {
		cur, err := m.loadLocked()
		if err != nil {
			return err
		}
		pub = cur.Published
	}
	next := *head
	next.part, next.writes = nil, 0
	next.Generation++
	next.Published = pub
	for k, p := range changes {
		if p.forgets() {
			delete(next.Published, k)
		} else {
			next.Published[k] = p
		}
	}
	b, err := json.Marshal(&next)
	if err != nil {
		return err
	}
	m.setLocked(b)
	head.Generation = next.Generation
	return nil
}

// memoryDecoded is a MemoryState's saved snapshot decoded for its views.
// It is not changed once built (a save drops it, and the next read builds
// another), so the views read it outside the MemoryState's lock, and hand
// out copies of what it holds.
type memoryDecoded struct {
	// saves is the MemoryState's count of saves when it was built.
	saves uint64
	// head is the snapshot without its Published records, as JSON.
	head []byte
	pub  map[string]Published
	// keys are pub's, in order; holders pub's by recipient, in order.
	keys    []string
	holders map[string][]string
}

// decoded returns the saved snapshot decoded, decoding it if it was saved
// since the last time.
func (m *MemoryState) decoded(ctx context.Context) (*memoryDecoded, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dec != nil {
		return m.dec, nil
	}
	s, err := m.loadLocked()
	if err != nil {
		return nil, err
	}
	d := &memoryDecoded{saves: m.saves, pub: s.Published, keys: slices.Sorted(maps.Keys(s.Published)), holders: map[string][]string{}}
	for _, k := range d.keys {
		r := s.Published[k].Recipient
		d.holders[r] = append(d.holders[r], k)
	}
	s.Published = map[string]Published{}
	if d.head, err = json.Marshal(s); err != nil {
		return nil, fmt.Errorf("smimesync: encoding the state's header: %w", err)
	}
	m.dec = d
	return d, nil
}

// clone returns p with slices of its own.
func (p Published) clone() Published {
	p.UserCertificate = slices.Clone(p.UserCertificate)
	p.UserSMIMECertificate = slices.Clone(p.UserSMIMECertificate)
	return p
}

// memoryView is a MemoryState's StateView.
type memoryView struct {
	m      *MemoryState
	closed atomic.Bool
}

func (v *memoryView) Header(ctx context.Context) (*Snapshot, error) {
	d, err := v.m.decoded(ctx)
	if err != nil {
		return nil, err
	}
	s := new(Snapshot)
	if err := json.Unmarshal(d.head, s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	s.Published = map[string]Published{}
	s.writes = d.saves
	return s, nil
}

func (v *memoryView) Published(ctx context.Context, key string) (Published, bool, error) {
	d, err := v.m.decoded(ctx)
	if err != nil {
		return Published{}, false, err
	}
	p, ok := d.pub[key]
	return p.clone(), ok, nil
}

func (v *memoryView) EachPublished(ctx context.Context, skip func(key string) bool, fn func(key string, p Published) error) error {
	d, err := v.m.decoded(ctx)
	if err != nil {
		return err
	}
	for _, k := range d.keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if skip != nil && skip(k) {
			continue
		}
		if err := fn(k, d.pub[k].clone()); err != nil {
			return err
		}
	}
	return nil
}

func (v *memoryView) Holders(ctx context.Context, recipient string) ([]string, error) {
	d, err := v.m.decoded(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Clone(d.holders[recipient]), nil
}

func (v *memoryView) Close() error {
	if v.closed.Swap(true) {
		return errors.New("smimesync: the state view was closed already")
	}
	return nil
}
