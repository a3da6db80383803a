package smimesync

import (
	"bufio"
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"

	"github.com/smimesync/go-smimesync/cloud"
)

// A plan's rows live in its temporary file (the spill, spill.go), not in
// the heap: a plan of a million entries that all change would otherwise
// hold a gigabyte of rows. What stays in memory is bounded by the
// concurrency and a run's length, plus per row 16 bytes of its key (the
// entries read, for departures and forgetUnseen) and, for a row with a
// recipient, 24 bytes (its recipient's hash and the row's place, for
// conflicts).
//
// Rows are kept in runs of at most runRows (or about runBytes of records:
// a row that carries its entry, waiting for a recipient, is a few
// kilobytes), each sorted (compareChanges) before it is written; reading
// the rows merges the runs, so they come back in the plan's order. A row changed after it was written (a conflict
// found once every row is known) is kept in memory and read in place of
// the one in the file.
//
// A row record is, like a values record, the length of its body (4 bytes,
// big-endian) and the body: the row in binary (rowcodec.go).

// runRows is how many rows wait in memory before they are sorted and
// written as a run: about 6 MB of rows. (A variable for the tests.)
var runRows = 4096

// runBytes bounds a run's block (rowSizeHint of its rows): what a run's
// encoding holds at once.
const runBytes = 4 << 20

// rowSet is the rows of a plan, or of a report.
type rowSet struct {
	sp *spill

	mu  sync.Mutex
	buf []*Change // not yet in a run
	// bufBytes is the rowSizeHint of buf's rows.
	bufBytes int
	runs     []rowRun
	err      error // the first failure to write a run: the rows are incomplete
	// writing counts the runs being written (writeRun), inflight too,
	// under mu: rows are read only once none is.
	writing  sync.WaitGroup
	inflight int

	// keys is every row's key (hashKey of its state key); sorted while
	// keysSorted.
	keys       []keyHash
	keysSorted bool
	// recips is, for every row with a recipient that is not a departure,
	// its recipient's hash and the row's offset; sorted while
	// recipsSorted.
	recips       []recipRef
	recipsSorted bool

	// unindexed is a report's: nothing asks its rows by key or by
	// recipient, so neither is kept.
	unindexed bool

	// sum counts the rows (summarize, one row at a time).
	sum Summary
	// over holds the rows changed after they were written, by offset.
	over map[int64]*Change
}

// rowRun is a run of rows in the file: size bytes from off, n rows.
type rowRun struct {
	off, size int64
	n         int
}

// recipRef is a row's recipient (hashKey of its ID) and the row's offset.
type recipRef struct {
	h   keyHash
	off int64
}

func newRowSet(sp *spill) *rowSet { return &rowSet{sp: sp} }

// newReportRows is a report's rows: counted, kept in order, not indexed.
func newReportRows(sp *spill) *rowSet { return &rowSet{sp: sp, unindexed: true} }

// add keeps c: counted at once, written with the next run. c must not be
// changed after (the run may already be written).
func (rs *rowSet) add(c *Change) error {
	rs.mu.Lock()
	if rs.err != nil {
		defer rs.mu.Unlock()
		return rs.err
	}
	if c.spilled == 0 && c.desired.Len() > 0 {
		// A row made after the read (a departure): its values go to
		// the file too, before the row.
		if len(c.desiredFP[0])+len(c.desiredFP[1]) == 0 {
			for i, vals := range [][][]byte{c.desired.UserCertificate, c.desired.UserSMIMECertificate} {
				for _, v := range vals {
					c.desiredFP[i] = append(c.desiredFP[i], sha256.Sum256(v))
				}
			}
		}
		if err := rs.sp.keep(c); err != nil {
			rs.err = err
			rs.mu.Unlock()
			return err
		}
	}
	rs.sum.count(c, 1)
	if !rs.unindexed {
		rs.keys = append(rs.keys, hashKey(stateKey(c.Source, c.ID)))
		rs.keysSorted = false
	}
	rs.buf = append(rs.buf, c)
	rs.bufBytes += rowSizeHint(c)
	if len(rs.buf) < runRows && rs.bufBytes < runBytes {
		rs.mu.Unlock()
		return nil
	}
	// The run is sorted, encoded and written outside the lock: the other
	// workers go on adding rows meanwhile.
	batch := rs.buf
	rs.buf, rs.bufBytes = nil, 0
	rs.writing.Add(1)
	rs.inflight++
	rs.mu.Unlock()
	return rs.writeRun(batch)
}

// flush writes the rows waiting in memory as a run, and waits for the
// runs being written.
func (rs *rowSet) flush() error {
	rs.mu.Lock()
	batch := rs.buf
	rs.buf, rs.bufBytes = nil, 0
	rs.writing.Add(1)
	rs.inflight++
	rs.mu.Unlock()
	err := rs.writeRun(batch)
	rs.writing.Wait()
	if err == nil {
		// Whatever waits in the spill's buffer goes to the disk now:
		// one that cannot take it fails here, not on a later read.
		err = rs.sp.flushWrites()
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err != nil && rs.err == nil {
		rs.err = err
	}
	return rs.err
}

// writeRun sorts batch and writes it as one run: one block of the file,
// its rows following each other with no values record between them.
func (rs *rowSet) writeRun(batch []*Change) (err error) {
	defer rs.writing.Done()
	var (
		block []byte
		rel   []int64
		off   int64
	)
	if len(batch) > 0 {
		block, rel, err = encodeRun(batch)
		if err == nil {
			off, err = rs.sp.appendBlock(block)
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.inflight--
	if err != nil {
		rs.err = cmp.Or(rs.err, err)
		return err
	}
	if len(batch) == 0 {
		return rs.err
	}
	for i, c := range batch {
		if c.Recipient != nil && !c.Departed() && !rs.unindexed {
			rs.recips = append(rs.recips, recipRef{h: hashKey(c.Recipient.ID), off: off + rel[i]})
			rs.recipsSorted = false
		}
	}
	rs.runs = append(rs.runs, rowRun{off: off, size: int64(len(block)), n: len(batch)})
	return rs.err
}

// encodeRun sorts batch and encodes it as a run's block, with each row's
// offset in it.
func encodeRun(batch []*Change) ([]byte, []int64, error) {
	slices.SortStableFunc(batch, compareChanges)
	size := 0
	for _, c := range batch {
		size += rowSizeHint(c)
	}
	block := make([]byte, 0, size)
	rel := make([]int64, len(batch))
	var head []byte
	for i, c := range batch {
		rel[i] = int64(len(block))
		var err error
		if block, err = appendRow(block, &head, c); err != nil {
			return nil, nil, err
		}
	}
	return block, rel, nil
}

// index sorts the keys and the recipients for has and byRecipient, once
// every row so far is written (flush).
func (rs *rowSet) index() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.keysSorted {
		slices.SortFunc(rs.keys, compareKeyHash)
		rs.keysSorted = true
	}
	if !rs.recipsSorted {
		slices.SortFunc(rs.recips, func(a, b recipRef) int {
			if c := compareKeyHash(a.h, b.h); c != 0 {
				return c
			}
			return int(a.off - b.off)
		})
		rs.recipsSorted = true
	}
}

// compareKeyHash orders key hashes as bytes.Compare does, a half at a
// time: the plan looks up a key or two per record of the state in them.
func compareKeyHash(a, b keyHash) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

// has reports whether a row has the state key key (after index).
func (rs *rowSet) has(key string) bool {
	if rs == nil {
		return false
	}
	return rs.hasHash(hashKey(key))
}

// hasHash is has of the key whose hashKey is h.
func (rs *rowSet) hasHash(h keyHash) bool {
	if rs == nil {
		return false
	}
	_, ok := slices.BinarySearchFunc(rs.keys, h, compareKeyHash)
	return ok
}

// byRecipient returns the offsets of the rows whose recipient's ID hashes
// as rid does (after index; a hash shared by two IDs gives both).
func (rs *rowSet) byRecipient(rid string) []int64 {
	h := hashKey(rid)
	i, _ := slices.BinarySearchFunc(rs.recips, recipRef{h: h}, func(a, b recipRef) int { return compareKeyHash(a.h, b.h) })
	var offs []int64
	for ; i < len(rs.recips) && rs.recips[i].h == h; i++ {
		offs = append(offs, rs.recips[i].off)
	}
	return offs
}

// sharedRecipients calls fn with the offsets of the rows of every
// recipient hash that two rows or more share (after index).
func (rs *rowSet) sharedRecipients(fn func(offs []int64) error) error {
	for i := 0; i < len(rs.recips); {
		j := i + 1
		for j < len(rs.recips) && rs.recips[j].h == rs.recips[i].h {
			j++
		}
		if j-i > 1 {
			offs := make([]int64, 0, j-i)
			for _, r := range rs.recips[i:j] {
				offs = append(offs, r.off)
			}
			if err := fn(offs); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// at returns the row at off: changed in memory (a copy), or read from
// the file.
func (rs *rowSet) at(off int64) (*Change, error) {
	if c := rs.overAt(off); c != nil {
		return c, nil
	}
	return rs.sp.readRow(off)
}

// overAt returns a copy of the row changed in memory at off, or nil: the
// caller may change what it gets.
func (rs *rowSet) overAt(off int64) *Change {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	o := rs.over[off]
	if o == nil {
		return nil
	}
	c := *o
	c.Keep, c.Drop = slices.Clone(o.Keep), slices.Clone(o.Drop)
	c.Removes, c.Published = slices.Clone(o.Removes), slices.Clone(o.Published)
	if o.Recipient != nil {
		r := *o.Recipient
		c.Recipient = &r
	}
	return &c
}

// replace puts c, changed, in place of the row at off (old, as read), and
// counts it instead of old.
func (rs *rowSet) replace(off int64, old, c *Change) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.over == nil {
		rs.over = map[int64]*Change{}
	}
	rs.over[off] = c
	rs.sum.count(old, -1)
	rs.sum.count(c, 1)
}

// all returns the rows in order, merging the runs. The rows waiting in
// memory must have been flushed.
func (rs *rowSet) all() iter.Seq2[*Change, error] {
	return func(yield func(*Change, error) bool) {
		rs.mu.Lock()
		runs, err, waiting := slices.Clone(rs.runs), rs.err, len(rs.buf)+rs.inflight
		rs.mu.Unlock()
		switch {
		case err != nil:
			yield(nil, err)
			return
		case waiting > 0:
			yield(nil, errors.New("smimesync: internal error: rows read before they were written"))
			return
		}
		h := &runHeap{}
		for _, r := range runs {
			rr := rs.sp.runReader(r)
			c, off, err := rr.next()
			if err != nil {
				yield(nil, err)
				return
			}
			if c != nil {
				h.items = append(h.items, runHead{c: c, off: off, r: rr})
			}
		}
		heap.Init(h)
		for h.Len() > 0 {
			top := &h.items[0]
			c, off := top.c, top.off
			next, noff, err := top.r.next()
			if err != nil {
				yield(nil, err)
				return
			}
			if next == nil {
				heap.Pop(h)
			} else {
				top.c, top.off = next, noff
				heap.Fix(h, 0)
			}
			if o := rs.overAt(off); o != nil {
				c = o
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// runHead is a run's next row while the runs are merged.
type runHead struct {
	c   *Change
	off int64
	r   *runReader
}

type runHeap struct{ items []runHead }

func (h *runHeap) Len() int { return len(h.items) }
func (h *runHeap) Less(i, j int) bool {
	if c := compareChanges(h.items[i].c, h.items[j].c); c != 0 {
		return c < 0
	}
	return h.items[i].off < h.items[j].off // stable: the earlier written first
}
func (h *runHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *runHeap) Push(x any)    { h.items = append(h.items, x.(runHead)) }
func (h *runHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// runReader reads a run's rows in order.
type runReader struct {
	r    *bufio.Reader
	off  int64 // of the next row
	left int
	err  error
}

// runReader opens r for reading (the file's errors come with next).
func (sp *spill) runReader(r rowRun) *runReader {
	sp.mu.Lock()
	f, closed := sp.f, sp.closed
	var werr error
	if !closed {
		werr = sp.flushLocked()
	}
	sp.mu.Unlock()
	rr := &runReader{off: r.off, left: r.n}
	switch {
	case closed:
		rr.err = fmt.Errorf("%w: reading back: %w", ErrSpill, errPlanClosed)
	case f == nil:
		rr.err = fmt.Errorf("%w: reading back: no file", ErrSpill)
	case werr != nil:
		rr.err = werr
	default:
		rr.r = bufio.NewReaderSize(io.NewSectionReader(f, r.off, r.size), 16<<10)
	}
	return rr
}

// next returns the next row and its offset; nil at the end of the run.
func (rr *runReader) next() (*Change, int64, error) {
	if rr.err != nil {
		return nil, 0, rr.err
	}
	if rr.left == 0 {
		return nil, 0, nil
	}
	off := rr.off
	var head [4]byte
	if _, err := io.ReadFull(rr.r, head[:]); err != nil {
		rr.err = fmt.Errorf("%w: reading back the row at %d: %w", ErrSpill, off, unexpectedEOF(err))
		return nil, 0, rr.err
	}
	body := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(rr.r, body); err != nil {
		rr.err = fmt.Errorf("%w: reading back the row at %d: %w", ErrSpill, off, unexpectedEOF(err))
		return nil, 0, rr.err
	}
	c, err := decodeRow(body)
	if err != nil {
		rr.err = fmt.Errorf("%w: the row at %d: %w", ErrSpill, off, err)
		return nil, 0, rr.err
	}
	rr.off += int64(4 + len(body))
	rr.left--
	return c, off, nil
}

// appendBlock writes block, records end to end, at the end of the file
// and returns its offset.
func (sp *spill) appendBlock(block []byte) (int64, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return 0, errPlanClosed
	}
	return sp.appendRaw(block)
}

// readRow reads the row record at off.
func (sp *spill) readRow(off int64) (*Change, error) {
	body, err := sp.readRecord(off)
	if err != nil {
		return nil, err
	}
	c, err := decodeRow(body)
	if err != nil {
		return nil, fmt.Errorf("%w: the row at %d: %w", ErrSpill, off, err)
	}
	return c, nil
}

// Rows returns the plan's changes in order (see Changes): those a Syncer
// made wait in the plan's temporary file and are read back one at a time,
// so that a plan of a large directory is never in memory whole; a Plan or
// a Report made by hand gives its Changes. Each change is read anew on
// every call: changing one changes nothing in the plan. An error (the
// temporary file cannot be read) ends the rows. A plan that was applied
// or closed has no rows left to read (its file is removed): read the
// report's.
func (p *Plan) Rows() iter.Seq2[*Change, error] {
	if p.rows == nil {
		return func(yield func(*Change, error) bool) {
			for _, c := range p.Changes {
				if !yield(c, nil) {
					return
				}
			}
		}
	}
	return p.rows.all()
}

// CollectRows returns every change of the plan, in order, in memory: for
// a plan known to be small (a test, a handful of entries). A plan of a
// large directory is read with [Plan.Rows].
func (p *Plan) CollectRows() ([]*Change, error) {
	var out []*Change
	for c, err := range p.Rows() {
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// count adds c's share to s (n = 1), or takes it away (n = -1).
func (s *Summary) count(c *Change, n int) {
	s.Entries += n
	switch c.Action {
	case ActionAdd:
		s.Add += n
	case ActionReplace:
		s.Replace += n
	case ActionRemove:
		s.Remove += n
	case ActionUnchanged:
		s.Unchanged += n
	case ActionSkip:
		s.Skip += n
	case ActionDepart:
		s.Depart += n
	}
	if c.Departed() {
		s.Departed += n
	}
	switch {
	case c.Writes() && c.CurrentFrom == CurrentUnknown:
		s.Losing += n
		s.Overwriting += n
	case c.Writes() && len(c.Removes) > 0:
		s.Losing += n
	}
	if len(c.prune[cloud.AttrUserCertificate])+len(c.prune[cloud.AttrUserSMIMECertificate]) > 0 {
		s.Pruning += n
	}
	if c.Retried {
		s.Retried += n
	}
	if c.Memoized {
		s.Memoized += n
	}
	s.KeptValues += n * len(c.Keep)
	s.DroppedValues += n * len(c.Drop)
	if m := c.MemoValues; m != nil {
		s.KeptValues += n * m.Kept
		s.DroppedValues += n * m.Dropped
		s.addDropped(m.Reasons, n)
	}
	for _, d := range c.Drop {
		s.addDropped(d.Reasons, n)
	}
	switch c.Outcome {
	case OutcomeWritten:
		s.Written += n
	case OutcomeFailed:
		s.Failed += n
	case OutcomeNotWritable:
		s.NotWritable += n
	}
}

func (s *Summary) addDropped(rs []Reason, n int) {
	for _, r := range rs {
		if s.Dropped == nil {
			s.Dropped = map[Reason]int{}
		}
		s.Dropped[r] += n
		if s.Dropped[r] == 0 {
			delete(s.Dropped, r)
		}
	}
}
