package smimesync

import (
	"bytes"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// A pass over an unchanged directory reads, for every entry, its memo
// (LookupMemo) and its record (boltView.Published): two reads, each a
// read transaction of its own, whose beginning and end (and the lookup of
// the bucket in it) cost more than the reads. A BoltState therefore keeps
// the read transactions of those reads for the next ones (readTxs), as
// long as nothing was written since they began: a read through a kept
// transaction sees what is saved when it is made, as one through a new
// transaction does.
//
// Every write of an open store goes through BoltState.write, which gives
// the kept transactions up before it writes and keeps none until it is
// done. (bbolt also needs that: a commit that grows the file waits for
// every read transaction to end.) The writes of open (a new store's
// buckets, an import, the holders' index mended) come before any read of
// the store they open. The store's close gives them up too.

// readTxs is a BoltState's kept read transactions.
type readTxs struct {
	mu sync.Mutex
	// seq counts the starts and ends of writes, writing the writes in
	// flight: a transaction begun at seq s is kept only while seq is
	// still s and nothing is being written.
	seq     uint64
	writing int
	idle    []*readTx
}

// maxIdleTxs bounds the transactions kept: as many as the reads made at
// once, which the Syncer's workers bound.
const maxIdleTxs = 32

// readTx is a read transaction, the seq it began at, and a cursor for
// each bucket it read (nil for a bucket the store does not have).
type readTx struct {
	tx      *bolt.Tx
	seq     uint64
	cursors map[string]*bolt.Cursor
}

// get returns the value of key in the bucket of name (nil when there is
// none, or no such bucket), as Bucket.Get does, through the cursor t
// keeps for the bucket: Bucket.Get makes a cursor (and grows its stack)
// on every call.
func (t *readTx) get(name, key []byte) []byte {
	c := t.cursor(name)
	if c == nil {
		return nil
	}
	k, v := c.Seek(key)
	if v == nil || !bytes.Equal(k, key) {
		return nil // not there, or a bucket
	}
	return v
}

// cursor is t's cursor over the bucket of name (nil when there is no
// such bucket), made on first use. A read moves it where it needs it
// (Seek): nothing may count on where the previous read left it.
func (t *readTx) cursor(name []byte) *bolt.Cursor {
	c, ok := t.cursors[string(name)]
	if !ok {
		if bk := t.tx.Bucket(name); bk != nil {
			c = bk.Cursor()
		}
		if t.cursors == nil {
			t.cursors = map[string]*bolt.Cursor{}
		}
		t.cursors[string(name)] = c
	}
	return c
}

// read runs fn in a read transaction of db: one kept from an earlier read
// when nothing was written since it began, else a new one, which is then
// kept for the next read if nothing was written meanwhile.
func (b *BoltState) read(db *bolt.DB, fn func(t *readTx) error) error {
	r := &b.reads
	var stale []*readTx
	r.mu.Lock()
	var t *readTx
	for t == nil && len(r.idle) > 0 {
		last := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if last.seq == r.seq && r.writing == 0 && last.tx.DB() == db {
			t = last
		} else {
			stale = append(stale, last)
		}
	}
	seq := r.seq
	r.mu.Unlock()
	rollback(stale)
	if t == nil {
		tx, err := db.Begin(false)
		if err != nil {
			return err
		}
		t = &readTx{tx: tx, seq: seq}
	}
	kept := false
	defer func() {
		if !kept {
			t.tx.Rollback()
		}
	}()
	err := fn(t)
	r.mu.Lock()
	if t.seq == r.seq && r.writing == 0 && len(r.idle) < maxIdleTxs {
		r.idle = append(r.idle, t)
		kept = true
	}
	r.mu.Unlock()
	return err
}

// write runs fn, which writes to the store, on the open store: the read
// transactions kept are rolled back first, and none is kept until fn is
// done.
func (b *BoltState) write(fn func(db *bolt.DB) error) error {
	return b.with(func(db *bolt.DB) error {
		b.reads.beginWrite()
		defer b.reads.endWrite()
		return fn(db)
	})
}

func (r *readTxs) beginWrite() {
	r.mu.Lock()
	r.writing++
	r.seq++
	idle := r.idle
	r.idle = nil
	r.mu.Unlock()
	rollback(idle)
}

func (r *readTxs) endWrite() {
	r.mu.Lock()
	r.writing--
	r.seq++
	r.mu.Unlock()
}

// drop rolls back the transactions kept: the store is being closed.
func (r *readTxs) drop() {
	r.mu.Lock()
	idle := r.idle
	r.idle = nil
	r.seq++
	r.mu.Unlock()
	rollback(idle)
}

func rollback(ts []*readTx) {
	for _, t := range ts {
		t.tx.Rollback()
	}
}
