//go:build linux

package smimesync

import (
	"os"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// shedLook is how many bytes of its file a BoltState reads, as lookupTouch
// and walkTouch count them, between two looks at the process's resident
// pages of mapped files. A read fault maps in 16 pages around the one read
// (the kernel's fault-around), or a whole large folio of the page cache,
// so the pages mapped in can outgrow the bytes counted many times over.
const shedLook = 512 << 10

// shedder gives back, on Linux, the pages of a [BoltState]'s file that the
// process has mapped in, as a pass goes.
//
// bbolt reads its file through a read-only shared mapping (mmap with
// PROT_READ and MAP_SHARED; its writes go through the file, not the
// mapping), and every page of it that a pass touches stays mapped into the
// process until the mapping goes: it counts in the process's RSS (RssFile
// in /proc/self/status, and VmHWM) and in the OOM killer's reckoning,
// although it is clean page cache. A pass over a store of a million
// records touches most of its 900 MiB.
//
// So the reads count what they read (shedLook), and the shedder then
// looks at the process's resident pages of mapped files (/proc/self/statm,
// a few microseconds), as it does after every commit of a write; when they
// grew by the limit (BoltState.MapLimit) since the last shed, it calls
// madvise(MADV_DONTNEED) over the whole mapping. On a read-only
// MAP_SHARED file mapping that only drops the process's page-table
// entries: the pages stay in the page cache (the kernel reclaims them as
// it reclaims any), and the next access faults the same bytes back in, a
// minor fault. Nothing is lost or zeroed: DONTNEED zeroes only private
// memory, and the range shed is the mapping's and no other. Where statm
// cannot be read, it sheds every limit's worth of bytes counted.
//
// That the range is the mapping's is what the read transaction is for.
// bbolt remaps the file (munmap, then mmap, perhaps at another address)
// when a write transaction grows it, under a lock that waits for every
// open read transaction. The shedder takes the mapping's address
// (DB.Info) and the size the transaction sees (Tx.Size, within the
// mapping) only inside a read transaction, and calls madvise before that
// transaction ends: the range cannot be unmapped, and its addresses
// reused by the Go heap, meanwhile. In a write transaction it does nothing (the writer may remap
// at commit, and holds no such lock): a commit maps in the pages of the
// records it writes (it reads them back to write their new pages), and
// they are shed after it.
//
// The cost is in the faults that map the pages in again: a pass that
// looks records up in random order (as a pass does, in the directory's
// order) finds most of their pages unmapped after a shed, unless the limit
// is most of the file. Each such fault maps 16 pages or a large folio, and
// costs about 50 µs on the virtual machine the benchmarks ran on: there,
// lookups alone of every record of a 100,000-user store, in random order,
// took 5 to 10 times as long as without shedding (about 10 s against
// 1.5 s), whatever the limit from 16 to 64 MiB. MapLimit is the trade.
//
// Elsewhere than Linux the shedder does nothing (storeshed_other.go).
type shedder struct {
	// read counts the bytes read since the last look.
	read atomic.Int64

	// mu is held by the one goroutine that looks (the others go on).
	mu sync.Mutex
	// base is the resident pages of mapped files after the last shed, in
	// bytes; blind counts the bytes read since then where they cannot be
	// told (no statm).
	base, blind int64

	// limit is the growth that sheds (MapLimit); never when 0 or
	// negative.
	limit int64

	// off turns shedding off, and often makes every look shed: for the
	// tests. sheds counts the sheds.
	off, often bool
	sheds      atomic.Int64
}

// lookupTouch is what a lookup of a record of n bytes counts: the record,
// and the pages on its way down the tree (the root bucket's, the bucket's
// branches, its leaf), which a lookup of a random key finds elsewhere than
// the last one did.
func lookupTouch(n int) int { return n + 4*os.Getpagesize() }

// walkTouch is what one step of a cursor counts, over a record whose key
// is k bytes long and whose value (v bytes, 0 when the step did not read
// it) follows: the leaf element's header besides.
func walkTouch(k, v int) int { return 16 + k + v }

// commitTouch is what a commit that wrote n bytes of records counts: the
// records, and the pages of the ways down the trees of the buckets it
// wrote (a Record writes three), which it read.
func commitTouch(n int) int { return n + 16*os.Getpagesize() }

// touch counts n bytes read in tx, a read transaction, and sheds there
// when it is time. A nil shedder does nothing.
func (s *shedder) touch(tx *bolt.Tx, n int) {
	if s == nil || s.off || s.limit <= 0 || s.read.Add(int64(n)) < shedLook {
		return
	}
	s.look(int64(n), func() { s.shed(tx) })
}

// wrote counts n bytes read by a write transaction of db that committed
// (a Record's: commitTouch), and sheds, in a read transaction of its own,
// when it is time.
func (s *shedder) wrote(db *bolt.DB, n int) {
	if s.off || s.limit <= 0 || s.read.Add(int64(n)) < shedLook {
		return
	}
	s.look(int64(n), func() { s.shedDB(db) })
}

// committed looks now, after a write transaction of db that may have read
// many pages (Save, SaveChanges, SaveMemos: they are few in a pass), and
// sheds, in a read transaction of its own, when it is time.
func (s *shedder) committed(db *bolt.DB) {
	if s.off || s.limit <= 0 {
		return
	}
	s.look(s.after(), func() { s.shedDB(db) })
}

// setLimit sets the growth that sheds: limit bytes; never when 0 or
// negative.
func (s *shedder) setLimit(limit int64) { s.limit = limit }

// after is the growth that sheds.
func (s *shedder) after() int64 { return s.limit }

// look resets the count, and calls shed when the process's resident pages
// of mapped files grew by the limit since the last shed (or, where that
// cannot be told, when the limit's worth of bytes were counted since;
// counting at least n more). A goroutine that finds another one looking goes on.
func (s *shedder) look(n int64, shed func()) {
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	counted := s.read.Swap(0)
	after := s.after()
	now, ok := mappedFileBytes()
	switch {
	case s.often:
	case !ok:
		if s.blind += max(counted, n); s.blind < after {
			return
		}
	case now-s.base < after:
		// Another store of the process shed its pages: what this one
		// maps in counts from there.
		s.base = min(s.base, now)
		return
	}
	shed()
	s.sheds.Add(1)
	s.blind = 0
	s.base, _ = mappedFileBytes()
}

// shedDB sheds in a read transaction of db's own.
func (s *shedder) shedDB(db *bolt.DB) {
	db.View(func(tx *bolt.Tx) error { // error: only the store's being closed, when there is nothing to shed
		s.shed(tx)
		return nil
	})
}

// shed drops the process's mapping of the pages of tx's file (see
// shedder). tx must be a read transaction.
func (s *shedder) shed(tx *bolt.Tx) {
	if tx.Writable() {
		return
	}
	page := int64(os.Getpagesize())
	addr := tx.DB().Info().Data // page-aligned: mmap's
	size := (tx.Size() + page - 1) &^ (page - 1)
	if size <= 0 {
		return
	}
	// A plain syscall on the address: the mapping is bbolt's, not a Go
	// value. An error (none is expected: the range is mapped) leaves the
	// pages mapped, which costs memory, not correctness.
	unix.Syscall(unix.SYS_MADVISE, addr, uintptr(size), unix.MADV_DONTNEED)
}

// mappedFileBytes is the process's resident pages of mapped files (and
// of shared memory), in bytes: the third field of /proc/self/statm.
func mappedFileBytes() (int64, bool) {
	fd, err := unix.Open("/proc/self/statm", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	var buf [128]byte
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil || n <= 0 {
		return 0, false
	}
	// "size resident shared text lib data dt", in pages.
	field, pages, digits := 0, int64(0), false
	for _, c := range buf[:n] {
		switch {
		case c == ' ' || c == '\n':
			if field == 2 {
				return pages * int64(os.Getpagesize()), digits
			}
			field++
		case c >= '0' && c <= '9' && field == 2:
			pages, digits = pages*10+int64(c-'0'), true
		}
	}
	return 0, false
}
