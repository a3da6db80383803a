package smimesync

import (
	"bytes"
	"encoding/json"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/directory"
)

// SpillFile is the plan's temporary file of values to write, for the
// tests: nil until a write had values.
func SpillFile(p *Plan) *os.File {
	p.spill.mu.Lock()
	defer p.spill.mu.Unlock()
	return p.spill.f
}

// MemoryStateDecodes is how many times m decoded its saved snapshot whole
// (Load, and its views once per saved version), for the tests.
func MemoryStateDecodes(m *MemoryState) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.decodes
}

// WithoutWrites is s without the count of writes a StateView's Header
// notes in it, for comparing headers.
func WithoutWrites(s *Snapshot) *Snapshot {
	c := *s
	c.writes = 0
	return &c
}

// SpillRowsStart is where the plan's first run of rows starts in its
// temporary file, for the tests: the values of its writes come before.
func SpillRowsStart(p *Plan) int64 {
	p.rows.mu.Lock()
	defer p.rows.mu.Unlock()
	return p.rows.runs[0].off
}

// SetRunRows sets how many rows a run holds, for the test t.
func SetRunRows(t interface{ Cleanup(func()) }, n int) {
	old := runRows
	runRows = n
	t.Cleanup(func() { runRows = old })
}

// RewriteRecordsAsJSON rewrites every Published record of b's store as
// JSON, as this package wrote them before their binary layout (see
// store_record.go), for the tests of a store written then.
func RewriteRecordsAsJSON(t interface{ Fatal(...any) }, b *BoltState) {
	err := b.write(func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketPublished)
			put := map[string][]byte{}
			err := bk.ForEach(func(k, v []byte) error {
				p, err := decodePublished(k, v)
				if err != nil {
					return err
				}
				raw, err := json.Marshal(p)
				put[string(k)] = raw
				return err
			})
			if err != nil {
				return err
			}
			for k, raw := range put {
				if err := bk.Put([]byte(k), raw); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// RawRecord is the stored Published record of key in b's store, as its
// bytes (nil when there is none).
func RawRecord(t interface{ Fatal(...any) }, b *BoltState, key string) []byte {
	var raw []byte
	err := b.with(func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			raw = bytes.Clone(tx.Bucket(bucketPublished).Get([]byte(key)))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// RowEntry is the entry a row carries (to plan it again, or to prune it).
func RowEntry(c *Change) *directory.Entry { return c.entry }
