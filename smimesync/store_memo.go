package smimesync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketMemo holds a [BoltState]'s memos: one record per directory entry
// ID, encoded by encodeMemo. It is created by the first SaveMemos; a
// store without it has no memos.
var bucketMemo = []byte("memo")

// memoRecordVersion is the first byte of a memo record.
const memoRecordVersion = 2

// encodeMemo lays a memo out as: the version byte, Entry, Settings,
// RecheckBy and Verified as Unix seconds (big-endian int64, rounded down:
// a memo is never trusted a second longer than it should be; math.MinInt64
// for the zero time), then Recipient, RecipientName, RecipientKind, Skip
// and Detail, each preceded by its length (a uvarint), then Kept,
// DroppedValues and the number of Dropped reasons (uvarints) and each
// reason, preceded by its length.
func encodeMemo(m Memo) []byte {
	strs := []string{m.Recipient, m.RecipientName, m.RecipientKind, string(m.Skip), m.Detail}
	n := memoHead
	for _, s := range strs {
		n += binary.MaxVarintLen64 + len(s)
	}
	b := make([]byte, 0, n)
	b = append(b, memoRecordVersion)
	b = append(b, m.Entry[:]...)
	b = append(b, m.Settings[:]...)
	b = append(b, m.Values[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(memoTime(m.RecheckBy)))
	b = binary.BigEndian.AppendUint64(b, uint64(memoTime(m.Verified)))
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(m.Kept))
	b = binary.AppendUvarint(b, uint64(m.DroppedValues))
	b = binary.AppendUvarint(b, uint64(len(m.Dropped)))
	for _, r := range m.Dropped {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

// memoHead is the length of a memo record's fixed part.
const memoHead = 1 + 32 + 32 + 32 + 8 + 8

const memoZeroTime = -1 << 63

func memoTime(t time.Time) int64 {
	if t.IsZero() {
		return memoZeroTime
	}
	return t.Unix()
}

func memoTimeOf(u int64) time.Time {
	if u == memoZeroTime {
		return time.Time{}
	}
	return time.Unix(u, 0).UTC()
}

// errMemoRecord is a memo record this package cannot read.
var errMemoRecord = errors.New("not a memo record of this version")

func decodeMemo(b []byte) (Memo, error) {
	if len(b) < memoHead || b[0] != memoRecordVersion {
		return Memo{}, errMemoRecord
	}
	var m Memo
	copy(m.Entry[:], b[1:33])
	copy(m.Settings[:], b[33:65])
	copy(m.Values[:], b[65:97])
	m.RecheckBy = memoTimeOf(int64(binary.BigEndian.Uint64(b[97:105])))
	m.Verified = memoTimeOf(int64(binary.BigEndian.Uint64(b[105:113])))
	rest := b[memoHead:]
	// Every string of the memo is a slice of one copy of the rest: a pass
	// decodes the memo of every entry it reads.
	all, at := string(rest), 0
	bad := false
	num := func() int {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > 1<<20 {
			bad = true
			return 0
		}
		rest, at = rest[k:], at+k
		return int(n)
	}
	str := func() string {
		n := num()
		if bad || n > len(rest) {
			bad = true
			return ""
		}
		s := all[at : at+n]
		rest, at = rest[n:], at+n
		return s
	}
	m.Recipient, m.RecipientName, m.RecipientKind = str(), str(), str()
	m.Skip, m.Detail = SkipReason(str()), str()
	m.Kept, m.DroppedValues = num(), num()
	for range num() {
		if bad {
			break
		}
		m.Dropped = append(m.Dropped, Reason(str()))
	}
	if bad || len(rest) != 0 {
		return Memo{}, errMemoRecord
	}
	return m, nil
}

// LookupMemo reads the memo of key. A record it cannot read is no memo
// (its entry is judged again, and its memo rewritten); it is not an error.
// During a pass the store is open already (the pass's view holds it), so
// a lookup is a read, not an open, through a read transaction kept from
// an earlier one when nothing was written since (see store_readtx.go).
func (b *BoltState) LookupMemo(ctx context.Context, key string) (Memo, bool, error) {
	if err := ctx.Err(); err != nil {
		return Memo{}, false, err
	}
	var (
		m  Memo
		ok bool
	)
	err := b.with(func(db *bolt.DB) error {
		// A transaction kept from an earlier read (see store_readtx.go).
		return b.read(db, func(t *readTx) error {
			raw := t.get(bucketMemo, []byte(key))
			b.shed.touch(t.tx, lookupTouch(len(raw)))
			if raw == nil {
				return nil
			}
			var err error
			if m, err = decodeMemo(raw); err == nil {
				ok = true
			}
			return nil
		})
	})
	if err != nil {
		return Memo{}, false, fmt.Errorf("smimesync: reading the memo of %s in %s: %w", key, b.Path, err)
	}
	return m, ok, nil
}

// SaveMemos stores put and deletes drop in one transaction of its own,
// apart from the snapshot's.
func (b *BoltState) SaveMemos(ctx context.Context, put map[string]Memo, drop []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.write(func(db *bolt.DB) error {
		defer b.shed.committed(db) // after the commit: it read the memos it wrote
		return db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(bucketMemo)
			if err != nil {
				return err
			}
			for _, k := range drop {
				if err := bk.Delete([]byte(k)); err != nil {
					return err
				}
			}
			for k, m := range put {
				if err := bk.Put([]byte(k), encodeMemo(m)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return unwritable(err, "saving the memos in "+b.Path)
	}
	return nil
}
