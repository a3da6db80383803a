package smimesync

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"maps"
	"slices"
	"sync"
)

// unlisted is what a plan keeps of the entries it only counts: those read
// unchanged on their memo (Change.Memoized with ActionUnchanged), which
// are most of a quiet directory. Each would be a row of about a kilobyte;
// here it is 16 bytes, the first half of the SHA-256 of its state key
// (enough for the plan's questions: was this entry read, and is it one of
// those), and its share of the Summary.
//
// A plan made on a million-user directory that nothing changed then holds
// 16 MB for them instead of a gigabyte of rows.
type unlisted struct {
	mu sync.Mutex
	// keys is the keys by their first byte (keys[h[0]]), each list sorted
	// by seal: the lists grow by themselves, so that keeping a million
	// keys never needs a second copy of them all, as growing one list
	// would (its copy to a larger array, and a quarter of it unused).
	// Keys are hashes, spread evenly over the lists.
	keys   [256][]keyHash
	n      int
	sealed bool
	// counts is their share of the plan's Summary: Entries, Unchanged,
	// Memoized and their remembered values (MemoValues).
	counts Summary
}

// keyHash is an unlisted entry's key: the first 16 bytes of the SHA-256 of
// its state key. Two of a million entries share one with a probability
// below 10⁻²⁶.
type keyHash [16]byte

func hashKey(key string) keyHash {
	// Copied to the stack: []byte(key) would be allocated for a key
	// longer than 32 bytes, and a pass hashes a key or two per entry.
	var buf [128]byte
	s := sha256.Sum256(append(buf[:0], key...))
	return keyHash(s[:16])
}

// add counts c, a memoized unchanged row, instead of keeping it.
func (u *unlisted) add(c *Change) {
	h := hashKey(stateKey(c.Source, c.ID))
	u.mu.Lock()
	defer u.mu.Unlock()
	u.keys[h[0]] = append(u.keys[h[0]], h)
	u.n++
	u.counts.Entries++
	u.counts.Unchanged++
	u.counts.Memoized++
	if c.MemoValues != nil {
		u.counts.countMemo(c.MemoValues)
	}
}

// seal sorts the keys for has; the plan calls it once the read is done.
func (u *unlisted) seal() {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range u.keys {
		slices.SortFunc(u.keys[i], compareKeyHash)
	}
	u.sealed = true
}

// has reports whether the entry of state key key was read and only
// counted. It is false before seal.
func (u *unlisted) has(key string) bool {
	if u == nil || !u.sealed || u.n == 0 {
		return false
	}
	return u.hasHash(hashKey(key))
}

// hasHash is has of the key whose hashKey is h.
func (u *unlisted) hasHash(h keyHash) bool {
	if u == nil || !u.sealed || u.n == 0 {
		return false
	}
	_, ok := slices.BinarySearchFunc(u.keys[h[0]], h, compareKeyHash)
	return ok
}

// len is how many entries were only counted.
func (u *unlisted) len() int {
	if u == nil {
		return 0
	}
	return u.n
}

// bytes is the sorted keys, end to end, as a plan file keeps them (the
// lists in the order of their first byte: all the keys in order).
func (u *unlisted) bytes() []byte {
	if u == nil {
		return nil
	}
	b := make([]byte, 0, u.n*len(keyHash{}))
	for _, keys := range u.keys {
		for _, k := range keys {
			b = append(b, k[:]...)
		}
	}
	return b
}

// errUnlistedKeys is a plan file's list of unlisted entries that is not a
// whole number of sorted keys.
var errUnlistedKeys = errors.New("the unlisted entries' keys are damaged")

// unlistedFrom is the unlisted entries a plan file saved: keys as bytes
// wrote them, counts their share of the Summary.
func unlistedFrom(b []byte, counts Summary) (*unlisted, error) {
	n := len(keyHash{})
	if len(b)%n != 0 {
		return nil, errUnlistedKeys
	}
	u := &unlisted{sealed: true, counts: counts}
	var last keyHash
	for i := 0; i < len(b); i += n {
		k := keyHash(b[i : i+n])
		if i > 0 && bytes.Compare(last[:], k[:]) > 0 {
			// Sorted; the same key twice is an entry the source
			// returned twice, counted twice.
			return nil, errUnlistedKeys
		}
		last = k
		u.keys[k[0]] = append(u.keys[k[0]], k)
		u.n++
	}
	return u, nil
}

// Unlisted reports whether the plan read the entry of this source and ID
// and found it unchanged on its [Memo] (see [Syncer.Reverify]): such an
// entry has no row in Changes, only its share of the Summary (Entries,
// Unchanged, Memoized, and the values its memo remembers). Most entries
// of a quiet directory are unlisted, which keeps a plan of a million
// entries small. A report that keeps the latest word on every entry keeps
// its earlier word on an unlisted one.
func (p *Plan) Unlisted(source, id string) bool {
	return p != nil && p.unlisted.has(stateKey(source, id))
}

// UnlistedCount is how many entries the plan read and only counted (see
// [Plan.Unlisted]).
func (p *Plan) UnlistedCount() int {
	if p == nil {
		return 0
	}
	return p.unlisted.len()
}

// seen reports whether the plan read the entry of state key key (or
// found it gone): it has a row, or is unlisted. Only a plan a Syncer made
// or ReadPlan read is asked (one with rows).
func (p *Plan) seen(key string) bool {
	h := hashKey(key)
	return p.rows.hasHash(h) || p.unlisted.hasHash(h)
}

// summarize counts the plan's rows (as they were added: rowSet.sum) and
// the unlisted entries, for a plan a Syncer made or ReadPlan read.
func (p *Plan) summarize() Summary {
	p.rows.mu.Lock()
	s := p.rows.sum
	s.Dropped = maps.Clone(s.Dropped)
	p.rows.mu.Unlock()
	if p.unlisted == nil {
		return s
	}
	c := &p.unlisted.counts
	s.Entries += c.Entries
	s.Unchanged += c.Unchanged
	s.Memoized += c.Memoized
	s.KeptValues += c.KeptValues
	s.DroppedValues += c.DroppedValues
	for r, n := range c.Dropped {
		if s.Dropped == nil {
			s.Dropped = map[Reason]int{}
		}
		s.Dropped[r] += n
	}
	return s
}
