package smimesync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// A row record's body (rows.go) is a Change laid out in binary: every
// exported member and what Apply needs of it beyond them (its values'
// fingerprints, where its values lie in the file, what to prune, the
// entry to plan again, the memo to save). Rows were JSON; an unchanged
// pass writes a row for every settled skip (a read-only recipient, one
// whose set cannot be read, no recipient yet), reads it back three times
// (conflicts, Apply, the memos) and writes it again for the report, and
// decoding JSON was a fifth of that pass. The file is the process's own
// (made by the plan, removed with it), so no other layout need be read.
//
// The body is rowBinary, the CRC-32C (Castagnoli, big-endian) of the rest,
// the length of the head (a uvarint), the head (every field but the values
// to prune and the entry) and the tail (those two), the fields in the
// order encodeRow writes them: each string and byte value as its length
// (a uvarint) and its bytes, kept as they are (an ID that is not UTF-8
// keeps its bytes); each count as a uvarint; each int as a varint; each
// time as the length of its MarshalBinary (0 for the zero time) and those
// bytes; each fingerprint as its 32 bytes. The strings of a row read back
// share one copy of its head; the tail's are copies of their own, so that
// a row does not hold its entry's certificates twice. The checksum makes
// a damaged file an error, not a different row.
//
// A field added to Change, Value, Memo, MemoValues, cloud.Recipient or
// directory.Entry must be added here: TestRowCodecCoversEveryField
// fails until it is.

// rowBinary starts the body of a row record.
const rowBinary = 'B'

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Bits of a row record's flags byte.
const (
	rowRetried = 1 << iota
	rowMemoized
	rowForget
	rowHadMemo
	rowMemoValues
	rowEntry
	rowMemo
	rowRecipient
)

// encodeRow is a row record's body: c laid out in binary.
func encodeRow(c *Change) ([]byte, error) {
	var head []byte
	rec, err := appendRow(nil, &head, c)
	if err != nil {
		return nil, err
	}
	return rec[4:], nil
}

// appendRow appends c's row record to dst: the length of its body (4
// bytes, big-endian, as appendFrame writes it) and the body. head is a
// buffer for the row's head, kept by the caller for the next row. A run's
// rows are laid out in its block this way, each in place, rather than
// each in a body of its own copied into the block after.
func appendRow(dst []byte, head *[]byte, c *Change) ([]byte, error) {
	w := rowWriter{b: (*head)[:0]}
	defer func() { *head = w.b[:0] }()
	w.strs(c.ID, c.User, c.DN, c.Source)
	var flags byte
	for _, f := range [...]struct {
		on  bool
		bit byte
	}{{c.Retried, rowRetried}, {c.Memoized, rowMemoized}, {c.forget, rowForget}, {c.hadMemo, rowHadMemo},
		{c.MemoValues != nil, rowMemoValues}, {c.entry != nil, rowEntry}, {c.memo != nil, rowMemo}, {c.Recipient != nil, rowRecipient}} {
		if f.on {
			flags |= f.bit
		}
	}
	w.b = append(w.b, flags)
	if r := c.Recipient; r != nil {
		w.strs(r.ID, r.Name, r.Kind, r.ReadOnly)
	}
	w.strs(string(c.Action), string(c.Reason), c.Detail, string(c.CurrentFrom), string(c.Outcome), c.Error)
	for _, vals := range [...][]Value{c.Keep, c.Drop} {
		w.count(len(vals))
		for i := range vals {
			w.value(&vals[i])
		}
	}
	w.fingerprints(c.Removes)
	w.fingerprints(c.Published)
	if m := c.MemoValues; m != nil {
		w.int(int64(m.Kept))
		w.int(int64(m.Dropped))
		w.reasons(m.Reasons)
	}
	w.fingerprints(c.desiredFP[0])
	w.fingerprints(c.desiredFP[1])
	w.int(c.spilled)
	if m := c.memo; m != nil {
		w.b = append(w.b, m.Entry[:]...)
		w.b = append(w.b, m.Settings[:]...)
		w.b = append(w.b, m.Values[:]...)
		w.strs(m.Recipient, m.RecipientName, m.RecipientKind, string(m.Skip), m.Detail)
		w.int(int64(m.Kept))
		w.int(int64(m.DroppedValues))
		w.reasons(m.Dropped)
		w.time(m.RecheckBy)
		w.time(m.Verified)
	}
	w.time(c.recheckBy)
	if w.err != nil {
		return dst, fmt.Errorf("%w: encoding the row of %s: %w", ErrSpill, c.User, w.err)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, rowBinary, 0, 0, 0, 0)
	dst = binary.AppendUvarint(dst, uint64(len(w.b)))
	dst = append(dst, w.b...)
	// The tail: the values to prune, in the order of their attributes
	// (the same row, the same bytes), and the entry.
	t := rowWriter{b: dst}
	attrs := make([]string, 0, len(c.prune))
	for a := range c.prune {
		attrs = append(attrs, a)
	}
	slices.Sort(attrs)
	t.count(len(attrs))
	for _, a := range attrs {
		t.str(a)
		t.values(c.prune[a])
	}
	if e := c.entry; e != nil {
		t.strs(e.ID, e.DN, e.UserPrincipalName, e.Mail, e.Source)
		t.count(len(e.ProxyAddresses))
		t.strs(e.ProxyAddresses...)
		t.values(e.UserCertificate)
		t.values(e.UserSMIMECertificate)
		t.b = append(t.b, boolByte(e.Deleted))
	}
	dst = t.b
	n := len(dst) - start - 4
	if n > 1<<31 {
		return dst[:start], fmt.Errorf("%w: the row of %s is %d bytes", ErrSpill, c.User, n)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	putRowChecksum(dst[start+4:])
	return dst, nil
}

// rowSizeHint is about the size of c's row record, a little more for
// most rows: a run's block is made this large at once, rather than grown
// (a copy of it all each time).
func rowSizeHint(c *Change) int {
	n := 160 + len(c.ID) + len(c.User) + len(c.DN) + len(c.Source) + len(c.Detail) + len(c.Error)
	n += 256*(len(c.Keep)+len(c.Drop)) + 34*(len(c.Removes)+len(c.Published)+len(c.desiredFP[0])+len(c.desiredFP[1]))
	if c.memo != nil {
		n += 200
	}
	for _, vals := range c.prune {
		for _, v := range vals {
			n += 4 + len(v)
		}
	}
	if e := c.entry; e != nil {
		n += 16 + len(e.ID) + len(e.DN) + len(e.UserPrincipalName) + len(e.Mail) + len(e.Source)
		for _, p := range e.ProxyAddresses {
			n += 2 + len(p)
		}
		for _, v := range e.UserCertificate {
			n += 4 + len(v)
		}
		for _, v := range e.UserSMIMECertificate {
			n += 4 + len(v)
		}
	}
	return n
}

// putRowChecksum sets the checksum of a row record's body b.
func putRowChecksum(b []byte) {
	binary.BigEndian.PutUint32(b[1:5], crc32.Checksum(b[5:], crcTable))
}

// rowWriter appends a row's fields to b; err is the first time that
// could not be laid out.
type rowWriter struct {
	b   []byte
	err error
}

func (w *rowWriter) count(n int)  { w.b = binary.AppendUvarint(w.b, uint64(n)) }
func (w *rowWriter) int(n int64)  { w.b = binary.AppendVarint(w.b, n) }
func (w *rowWriter) str(s string) { w.count(len(s)); w.b = append(w.b, s...) }

func (w *rowWriter) strs(ss ...string) {
	for _, s := range ss {
		w.str(s)
	}
}

func (w *rowWriter) bytes(v []byte) { w.count(len(v)); w.b = append(w.b, v...) }

func (w *rowWriter) values(vs [][]byte) {
	w.count(len(vs))
	for _, v := range vs {
		w.bytes(v)
	}
}

func (w *rowWriter) reasons(rs []Reason) {
	w.count(len(rs))
	for _, r := range rs {
		w.str(string(r))
	}
}

func (w *rowWriter) fingerprints(fps []Fingerprint) {
	w.count(len(fps))
	for _, f := range fps {
		w.b = append(w.b, f[:]...)
	}
}

func (w *rowWriter) time(t time.Time) {
	if t.IsZero() {
		w.count(0)
		return
	}
	b, err := t.MarshalBinary()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.bytes(b)
}

func (w *rowWriter) value(v *Value) {
	w.b = append(w.b, v.SHA256[:]...)
	w.str(v.Attribute)
	w.reasons(v.Reasons)
	w.count(len(v.Notes))
	w.strs(v.Notes...)
	w.strs(v.Subject, v.Issuer, v.Serial)
	w.time(v.NotAfter)
}

// errRowRecord is a row record's body that is not one encodeRow wrote:
// the file was damaged.
var errRowRecord = errors.New("not a row record")

// decodeRow reads a row record's body. The strings of the head share one
// copy of it; those of the tail (the entry, the values to prune) are
// copies of their own.
func decodeRow(body []byte) (*Change, error) {
	if len(body) < 5 || body[0] != rowBinary {
		return nil, errRowRecord
	}
	if crc32.Checksum(body[5:], crcTable) != binary.BigEndian.Uint32(body[1:5]) {
		return nil, errors.New("a row record whose checksum does not match")
	}
	n, k := binary.Uvarint(body[5:])
	if k <= 0 || n > uint64(len(body)-5-k) {
		return nil, errRowRecord
	}
	head, tail := body[5+k:5+k+int(n)], body[5+k+int(n):]
	r := rowReader{fieldReader: fieldReader{b: head}, all: string(head)}
	c := &Change{ID: r.str(), User: r.str(), DN: r.str(), Source: r.str()}
	flags := r.byte()
	if flags&rowRecipient != 0 {
		c.Recipient = &cloud.Recipient{ID: r.str(), Name: r.str(), Kind: r.str(), ReadOnly: r.str()}
	}
	c.Action, c.Reason, c.Detail = Action(r.str()), SkipReason(r.str()), r.str()
	c.CurrentFrom, c.Outcome, c.Error = CurrentSource(r.str()), Outcome(r.str()), r.str()
	c.Keep, c.Drop = r.valueList(), r.valueList()
	c.Removes, c.Published = r.fingerprints(), r.fingerprints()
	c.Retried, c.Memoized = flags&rowRetried != 0, flags&rowMemoized != 0
	c.forget, c.hadMemo = flags&rowForget != 0, flags&rowHadMemo != 0
	if flags&rowMemoValues != 0 {
		c.MemoValues = &MemoValues{Kept: r.int(), Dropped: r.int(), Reasons: r.reasons()}
	}
	c.desiredFP = [2][]Fingerprint{r.fingerprints(), r.fingerprints()}
	c.spilled = r.int64()
	if flags&rowMemo != 0 {
		m := &Memo{}
		copy(m.Entry[:], r.fixed(32))
		copy(m.Settings[:], r.fixed(32))
		copy(m.Values[:], r.fixed(32))
		m.Recipient, m.RecipientName, m.RecipientKind = r.str(), r.str(), r.str()
		m.Skip, m.Detail = SkipReason(r.str()), r.str()
		m.Kept, m.DroppedValues = r.int(), r.int()
		m.Dropped = r.reasons()
		m.RecheckBy, m.Verified = r.time(), r.time()
		c.memo = m
	}
	c.recheckBy = r.time()
	if r.bad || r.pos != len(r.b) {
		return nil, errRowRecord
	}
	// The tail's bytes and strings are copies of their own: the entry
	// outlives the row in the state (Snapshot.Pending), and a row in a
	// run waiting to be written must not hold its certificates through
	// a copy of the whole body.
	t := rowReader{fieldReader: fieldReader{b: tail}}
	if n := t.count(2); n > 0 {
		c.prune = make(map[string][][]byte, n)
		for range n {
			a := t.ownStr()
			c.prune[a] = t.values()
		}
	}
	if flags&rowEntry != 0 {
		e := &directory.Entry{ID: t.ownStr(), DN: t.ownStr(), UserPrincipalName: t.ownStr(), Mail: t.ownStr(), Source: t.ownStr()}
		if n := t.count(1); n > 0 {
			e.ProxyAddresses = make([]string, n)
			for i := range e.ProxyAddresses {
				e.ProxyAddresses[i] = t.ownStr()
			}
		}
		e.UserCertificate, e.UserSMIMECertificate = t.values(), t.values()
		e.Deleted = t.byte() != 0
		c.entry = e
	}
	if t.bad || t.pos != len(t.b) {
		return nil, errRowRecord
	}
	return c, nil
}

// rowReader reads a row's fields from b, from pos (fieldReader); bad is
// set at the first one it cannot read, after which every read returns
// nothing. all is b as a string, which str slices.
type rowReader struct {
	fieldReader
	all string
}

func (r *rowReader) int64() int64 {
	if r.bad {
		return 0
	}
	n, k := binary.Varint(r.b[r.pos:])
	if k <= 0 {
		r.bad = true
		return 0
	}
	r.pos += k
	return n
}

func (r *rowReader) int() int {
	n := r.int64()
	if int64(int(n)) != n {
		r.bad = true
		return 0
	}
	return int(n)
}

// fixed reads n bytes, in place.
func (r *rowReader) fixed(n int) []byte {
	if r.bad || len(r.b)-r.pos < n {
		r.bad = true
		return nil
	}
	b := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b
}

// span reads a length-prefixed value and returns where it lies.
func (r *rowReader) span() (from, to int) {
	n := r.count(1)
	if r.bad {
		return 0, 0
	}
	from = r.pos
	r.pos += n
	return from, r.pos
}

// str reads a string: a slice of all.
func (r *rowReader) str() string {
	from, to := r.span()
	return r.all[from:to]
}

// ownStr reads a string into a copy of its own.
func (r *rowReader) ownStr() string {
	from, to := r.span()
	if from == to {
		return ""
	}
	return string(r.b[from:to])
}

// values reads a list of byte values, each a copy (nil for none, as JSON
// reads an omitted list).
func (r *rowReader) values() [][]byte {
	n := r.count(1)
	if r.bad || n == 0 {
		return nil
	}
	vs := make([][]byte, n)
	for i := range vs {
		from, to := r.span()
		vs[i] = append([]byte{}, r.b[from:to]...)
	}
	return vs
}

func (r *rowReader) reasons() []Reason {
	n := r.count(1)
	if r.bad || n == 0 {
		return nil
	}
	rs := make([]Reason, n)
	for i := range rs {
		rs[i] = Reason(r.str())
	}
	return rs
}

func (r *rowReader) time() time.Time {
	from, to := r.span()
	var t time.Time
	if from == to {
		return t
	}
	if err := t.UnmarshalBinary(r.b[from:to]); err != nil {
		r.bad = true
	}
	return t
}

// valueList reads a row's Keep or Drop: never nil, as a row read back
// always had.
func (r *rowReader) valueList() []Value {
	n := r.count(1 + 32)
	if r.bad || n == 0 {
		return []Value{}
	}
	vs := make([]Value, n)
	for i := range vs {
		v := &vs[i]
		copy(v.SHA256[:], r.fixed(32))
		v.Attribute = r.str()
		v.Reasons = r.reasons()
		if k := r.count(1); k > 0 {
			v.Notes = make([]string, k)
			for j := range v.Notes {
				v.Notes[j] = r.str()
			}
		}
		v.Subject, v.Issuer, v.Serial = r.str(), r.str(), r.str()
		v.NotAfter = r.time()
	}
	return vs
}
