package exchange

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"iter"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/smimesync/go-smimesync/cloud"
)

// index is the tenant's recipients as the preload listed them, kept in
// memory without a pointer per recipient or per address, so that a tenant
// of a million recipients costs the garbage collector a few hundred
// slices, not millions of strings.
//
// Each recipient is one record (see [index.add]) in chunks of bytes; an
// address is kept as its local part and the number of its domain in a
// table of the tenant's domains. An address is found through a table of
// 64-bit hashes of the lower-case addresses, sorted, next to the number of
// the recipient that holds it. A hash only points at candidates: the
// address itself is compared with the candidate's stored addresses, so
// that two addresses with the same hash each find their own recipient.
//
// Build it with newIndex, add and finish; after finish it is only read,
// and safe for concurrent use.
type index struct {
	// chunks hold the records back to back; a record never spans two.
	chunks [][]byte
	// recs[i] is where recipient i's record starts: its chunk's number
	// in the high 32 bits, its offset in the chunk in the low ones.
	recs []uint64
	// kinds are the recipients' Kind values; a record holds the number
	// of its own.
	kinds []string
	// domains are the parts after the last "@" of the addresses.
	domains strtab
	// hashes is sorted; owners[i] is the recipient holding an address
	// whose hash is hashes[i]. Rows of equal hash are in the order of the
	// recipients, so that the first recipient listed with an address is
	// the one found by it.
	hashes []uint64
	owners []uint32
	// addresses is the number of distinct addresses (after finish).
	addresses int
	// hash hashes a lower-case address; tests give one that collides.
	hash func([]byte) uint64

	// Used while building only; nil after finish.
	kindOf  map[string]uint64
	scratch []byte
	seen    []string
}

// indexChunk is the size of the index's chunks of records: small enough
// that the last one's free space does not matter, large enough to be few.
const indexChunk = 256 << 10

// Flags in a record's header, below the number of its kind.
const (
	recReadOnly   = 1 << iota // directory-synced: ReadOnly is syncedReason
	recBinaryGUID             // the ID is a lower-case GUID, stored as 16 bytes
	recFlagBits   = iota
)

// How a record stores the Name: a mode, then what the mode needs.
const (
	nameIsAddress = iota // the first address, as it is
	nameIsCased          // the first address with the ASCII letters a mask says upper case
	nameLiteral          // nameLiteral + its length, then its bytes
)

// errIndexTooLarge is returned by add when the index would hold more
// than it can number.
var errIndexTooLarge = errors.New("exchange: the tenant has more recipients than the index can hold")

// newIndex returns an empty index hashing addresses with hash, or, when
// hash is nil, with hash/maphash under a seed of the index's own.
func newIndex(hash func([]byte) uint64) *index {
	if hash == nil {
		seed := maphash.MakeSeed()
		hash = func(b []byte) uint64 { return maphash.Bytes(seed, b) }
	}
	return &index{hash: hash, kindOf: map[string]uint64{}, domains: strtab{num: map[string]uint64{}}}
}

// add records r (a recipient Find may return) under its primary address
// and its smtp: proxy addresses, lower-cased and trimmed. A recipient
// without any address is not kept: nothing would find it.
//
// A record is, in uvarints and bytes: a header (kind number <<
// recFlagBits | flags); the ID (16 bytes with recBinaryGUID, else its
// length and bytes); the Name (a name mode, then for nameIsCased the
// length and bytes of a bit mask, for a literal its bytes); the number
// of addresses, then for each its domain's number + 1 (0 for an address
// without "@", all local part), its local part's length and bytes.
func (x *index) add(r *recipient) error {
	c := r.cloud()
	x.seen = x.seen[:0]
	addr := func(a string) {
		a = strings.ToLower(strings.TrimSpace(a))
		if a != "" && !slices.Contains(x.seen, a) {
			x.seen = append(x.seen, a)
		}
	}
	addr(r.PrimarySmtpAddress)
	for _, a := range r.EmailAddresses {
		if len(a) > 5 && strings.EqualFold(a[:5], "smtp:") {
			addr(a[5:])
		}
	}
	if len(x.seen) == 0 {
		return nil
	}
	if len(x.recs) >= math.MaxUint32 {
		return errIndexTooLarge
	}
	kind, ok := x.kindOf[c.Kind]
	if !ok {
		kind = uint64(len(x.kinds))
		x.kinds = append(x.kinds, c.Kind)
		x.kindOf[c.Kind] = kind
	}
	header := kind << recFlagBits
	if c.ReadOnly != "" {
		header |= recReadOnly
	}
	guid, binGUID := parseLowerGUID(c.ID)
	if binGUID {
		header |= recBinaryGUID
	}
	b := binary.AppendUvarint(x.scratch[:0], header)
	if binGUID {
		b = append(b, guid[:]...)
	} else {
		b = appendString(b, c.ID)
	}
	b = appendName(b, c.Name, x.seen[0])
	b = binary.AppendUvarint(b, uint64(len(x.seen)))
	for _, a := range x.seen {
		var d uint64
		if at := strings.LastIndexByte(a, '@'); at >= 0 {
			n, err := x.domains.intern(a[at+1:])
			if err != nil {
				return err
			}
			a, d = a[:at], n+1
		}
		b = binary.AppendUvarint(b, d)
		b = appendString(b, a)
	}
	x.scratch = b

	num := uint32(len(x.recs))
	x.recs = append(x.recs, x.place(b))
	for a := range x.record(num).addrs() {
		x.scratch = x.appendAddress(x.scratch[:0], a)
		x.hashes = append(x.hashes, x.hash(x.scratch))
		x.owners = append(x.owners, num)
	}
	return nil
}

// appendName appends the record's Name, given the first address.
func appendName(b []byte, name, first string) []byte {
	if name == first {
		return binary.AppendUvarint(b, nameIsAddress)
	}
	if len(name) == len(first) {
		mask := make([]byte, (len(name)+7)/8)
		cased := true
		for i := range len(name) {
			switch c := name[i]; {
			case c == first[i]:
			case 'A' <= c && c <= 'Z' && c+'a'-'A' == first[i]:
				mask[i/8] |= 1 << (i % 8)
			default:
				cased = false
			}
		}
		if cased {
			return append(binary.AppendUvarint(binary.AppendUvarint(b, nameIsCased), uint64(len(mask))), mask...)
		}
	}
	b = binary.AppendUvarint(b, nameLiteral+uint64(len(name)))
	return append(b, name...)
}

// place copies a record into the chunks and returns where it starts. A
// record larger than a chunk gets a chunk of its own size.
func (x *index) place(b []byte) uint64 {
	last := len(x.chunks) - 1
	if last < 0 || len(x.chunks[last])+len(b) > cap(x.chunks[last]) {
		x.chunks = append(x.chunks, make([]byte, 0, max(indexChunk, len(b))))
		last++
	}
	off := len(x.chunks[last])
	x.chunks[last] = append(x.chunks[last], b...)
	return uint64(last)<<32 | uint64(off)
}

// finish sorts the address table and drops the rows that would never
// answer: an address another recipient listed before holds, or a second
// row of a recipient's addresses that share a hash. It counts the
// distinct addresses.
func (x *index) finish() {
	sort.Sort(byHash{x})
	out := 0
	var seen []address // the addresses of the hash at hand
	for i := 0; i < len(x.hashes); {
		h := x.hashes[i]
		j := i
		for j < len(x.hashes) && x.hashes[j] == h {
			j++
		}
		seen = seen[:0]
		for k := i; k < j; k++ {
			o := x.owners[k]
			if k > i && o == x.owners[k-1] {
				continue // its addresses of hash h are in seen already
			}
			keep := false
			for a := range x.record(o).addrs() {
				x.scratch = x.appendAddress(x.scratch[:0], a)
				if x.hash(x.scratch) == h && !slices.ContainsFunc(seen, a.same) {
					seen = append(seen, a)
					keep = true
				}
			}
			if keep {
				x.hashes[out], x.owners[out] = h, o
				out++
			}
		}
		x.addresses += len(seen)
		i = j
	}
	x.hashes, x.owners = x.hashes[:out], x.owners[:out]
	x.kindOf, x.domains.num, x.scratch, x.seen = nil, nil, nil, nil
}

// find returns a new Recipient for the first recipient listed with the
// lower-case address addr, or nil when none has it.
func (x *index) find(addr string) *cloud.Recipient {
	h := x.hash([]byte(addr))
	for i := sort.Search(len(x.hashes), func(i int) bool { return x.hashes[i] >= h }); i < len(x.hashes) && x.hashes[i] == h; i++ {
		r := x.record(x.owners[i])
		for a := range r.addrs() {
			if x.is(a, addr) {
				return x.recipient(r)
			}
		}
	}
	return nil
}

// recipient returns a new Recipient for r: callers may change it.
func (x *index) recipient(r record) *cloud.Recipient {
	c := &cloud.Recipient{ID: r.id(), Kind: x.kinds[r.header>>recFlagBits]}
	switch {
	case r.nameMode >= nameLiteral:
		c.Name = string(r.name)
	default:
		var first []byte
		for a := range r.addrs() {
			first = x.appendAddress(nil, a)
			break
		}
		if r.nameMode == nameIsCased {
			for i := range first {
				if r.name[i/8]&(1<<(i%8)) != 0 {
					first[i] -= 'a' - 'A'
				}
			}
		}
		c.Name = string(first)
	}
	if r.header&recReadOnly != 0 {
		c.ReadOnly = syncedReason
	}
	return c
}

// address is a stored address: its part before the last "@" and the
// number + 1 of the part after it in the index's domains, or all of it
// and 0 when it has no "@".
type address struct {
	local  []byte
	domain uint64
}

// same reports whether a and b are the same address (a domain is stored
// once: the same domain has the same number).
func (a address) same(b address) bool {
	return a.domain == b.domain && string(a.local) == string(b.local)
}

// appendAddress appends the address a stands for.
func (x *index) appendAddress(b []byte, a address) []byte {
	b = append(b, a.local...)
	if a.domain > 0 {
		b = append(append(b, '@'), x.domains.get(a.domain-1)...)
	}
	return b
}

// is reports whether a stands for s.
func (x *index) is(a address, s string) bool {
	if a.domain == 0 {
		return string(a.local) == s
	}
	l := len(a.local)
	return len(s) > l && s[:l] == string(a.local) && s[l] == '@' && s[l+1:] == string(x.domains.get(a.domain-1))
}

// record is one recipient's record, read (see [index.add]).
type record struct {
	header   uint64
	rawID    []byte // the ID's bytes, or the GUID's 16 with recBinaryGUID
	nameMode uint64
	name     []byte // the mask of nameIsCased, a literal's bytes
	n        uint64 // the number of addresses
	rest     []byte // the addresses, and whatever follows the record
}

// record reads recipient num's record.
func (x *index) record(num uint32) record {
	at := x.recs[num]
	b := x.chunks[at>>32][uint32(at):]
	var r record
	r.header, b = uvarint(b)
	if r.header&recBinaryGUID != 0 {
		r.rawID, b = b[:16], b[16:]
	} else {
		r.rawID, b = lengthBytes(b)
	}
	r.nameMode, b = uvarint(b)
	switch {
	case r.nameMode == nameIsCased:
		r.name, b = lengthBytes(b)
	case r.nameMode >= nameLiteral:
		l := r.nameMode - nameLiteral
		r.name, b = b[:l], b[l:]
	}
	r.n, r.rest = uvarint(b)
	return r
}

// addrs yields the record's addresses.
func (r record) addrs() iter.Seq[address] {
	return func(yield func(address) bool) {
		b := r.rest
		for range r.n {
			var a address
			a.domain, b = uvarint(b)
			a.local, b = lengthBytes(b)
			if !yield(a) {
				return
			}
		}
	}
}

// id returns the record's ID as the service wrote it.
func (r record) id() string {
	if r.header&recBinaryGUID == 0 {
		return string(r.rawID)
	}
	var s [36]byte
	hex.Encode(s[0:8], r.rawID[0:4])
	hex.Encode(s[9:13], r.rawID[4:6])
	hex.Encode(s[14:18], r.rawID[6:8])
	hex.Encode(s[19:23], r.rawID[8:10])
	hex.Encode(s[24:36], r.rawID[10:16])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:])
}

// parseLowerGUID returns the 16 bytes of s when s is a GUID written as
// record.id writes it back (lower-case hex, dashes at 8, 13, 18, 23), so
// that it can be stored in 16 bytes instead of 36 and read back the same.
func parseLowerGUID(s string) (g [16]byte, ok bool) {
	if len(s) != 36 {
		return g, false
	}
	n := 0 // hex digits read
	for i := range len(s) {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return g, false
			}
			continue
		}
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		default:
			return g, false
		}
		g[n/2] |= v << (4 * (1 - n%2))
		n++
	}
	return g, true
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// uvarint reads a uvarint the index wrote.
func uvarint(b []byte) (uint64, []byte) {
	v, n := binary.Uvarint(b)
	return v, b[n:]
}

// lengthBytes reads a length and that many bytes.
func lengthBytes(b []byte) ([]byte, []byte) {
	l, b := uvarint(b)
	return b[:l], b[l:]
}

// byHash sorts an index's address table by hash, then recipient.
type byHash struct{ x *index }

func (s byHash) Len() int { return len(s.x.hashes) }
func (s byHash) Less(i, j int) bool {
	h := s.x.hashes
	return h[i] < h[j] || h[i] == h[j] && s.x.owners[i] < s.x.owners[j]
}
func (s byHash) Swap(i, j int) {
	s.x.hashes[i], s.x.hashes[j] = s.x.hashes[j], s.x.hashes[i]
	s.x.owners[i], s.x.owners[j] = s.x.owners[j], s.x.owners[i]
}

// strtab is a table of distinct strings in one slice of bytes, numbered
// from 0 in the order they came.
type strtab struct {
	bytes []byte
	ends  []uint32 // string i is bytes[ends[i-1]:ends[i]]
	// num numbers the strings while the table is built; nil after.
	num map[string]uint64
}

// intern returns s's number, adding s when it is new.
func (t *strtab) intern(s string) (uint64, error) {
	if n, ok := t.num[s]; ok {
		return n, nil
	}
	if len(t.bytes)+len(s) > math.MaxUint32 {
		return 0, errIndexTooLarge
	}
	n := uint64(len(t.ends))
	t.bytes = append(t.bytes, s...)
	t.ends = append(t.ends, uint32(len(t.bytes)))
	t.num[strings.Clone(s)] = n
	return n, nil
}

// get returns string n.
func (t *strtab) get(n uint64) []byte {
	start := uint32(0)
	if n > 0 {
		start = t.ends[n-1]
	}
	return t.bytes[start:t.ends[n]]
}
