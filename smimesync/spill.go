package smimesync

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"

	"github.com/smimesync/go-smimesync/cloud"
)

// ErrSpill is wrapped by the error of a plan whose rows or values to write
// could not be kept in its temporary file (the plan fails: the disk under
// os.TempDir, TMPDIR on Unix, is full or not writable), by the error of a
// write whose values could not be read back from it (that write fails and
// nothing is sent for it; the rest of the Apply goes on), and by the error
// of an Apply whose rows could not be read back (nothing more is written;
// the cookie stays, so the next pass plans the rest again).
var ErrSpill = errors.New("the plan's temporary file of values to write")

// errPlanClosed is the error of using a plan after [Plan.Close].
var errPlanClosed = errors.New("smimesync: the plan was closed")

// spill is a plan's memory outside the heap, so that a plan of a large
// directory does not grow with it: a temporary file of the values each
// write sends, one record per change, read back (checked against the
// change's fingerprints) by Apply's write and by Plan.WriteTo, and of the
// plan's rows (rows.go). A report's rows have a spill of their own.
//
// The file is made on the first write that has values, in os.TempDir. On
// Unix it is unlinked at once: nothing is left behind even if the process
// is killed. Where a file cannot be unlinked while open (Windows) it is
// removed by close. close runs when Apply finishes, on Plan.Close, and
// when the garbage collector finds the plan unreachable.
//
// A record is the length of its body (4 bytes, big-endian), then the body:
// the number of userCertificate values and of userSMIMECertificate values
// (uvarints), then each value as its length (uvarint) and its bytes.
type spill struct {
	*spillFile
}

// spillFile is a spill's file and its bookkeeping: what the garbage
// collector closes once no plan, report or copy of either refers to the
// spill (newSpill).
type spillFile struct {
	mu     sync.Mutex
	f      *os.File
	name   string // the file's path while it has one: removed by close
	size   int64  // the file's size, without wbuf
	closed bool
	// wbuf is the records appended last, not yet written: they go to the
	// file in writes of spillBuffer bytes, not one by one (flushWrites).
	wbuf []byte
}

// spillBuffer is how many bytes of records wait before they are written.
const spillBuffer = 256 << 10

// newSpill makes a spill, closed by the garbage collector when nothing
// refers to it any more (a plan or a report dropped without Close, and
// every copy of it: Report{Plan: *plan} shares the plan's spill).
func newSpill() *spill {
	sp := &spill{&spillFile{}}
	runtime.AddCleanup(sp, func(f *spillFile) { _ = f.close() }, sp.spillFile)
	return sp
}

// attachSpill gives p a spill.
func attachSpill(p *Plan) *spill {
	p.spill = newSpill()
	return p.spill
}

// attachReportSpill gives rep a spill of its own for its rows.
func attachReportSpill(rep *Report) *spill {
	rep.Plan.spill = newSpill()
	return rep.Plan.spill
}

// Close removes the plan's temporary file: its rows and the values its
// writes send (see [ErrSpill]). Apply closes the plan it applies once it
// has written; call Close for a plan that is looked at, or saved with
// [Plan.WriteTo], and not applied (a dry run). A plan dropped without
// either is closed when the garbage collector finds it unreachable. A
// closed plan can no longer be read, applied or saved. Close may be called
// more than once.
//
// On a [Report] (which embeds its Plan), Close removes the file of the
// report's rows once it has been read. A report of an Apply that wrote
// nothing (the guard stopped it, the state could not be locked or
// prepared) shows the plan's rows, and its Close leaves them: the plan
// may still be applied.
func (p *Plan) Close() error {
	if p == nil || p.spill == nil {
		return nil
	}
	return p.spill.close()
}

// closeApplied closes a plan Apply has applied; a failure is only logged:
// the writes are done.
func (p *Plan) closeApplied(log *slog.Logger) {
	if err := p.Close(); err != nil {
		log.Warn("removing the plan's temporary file", "err", err)
	}
}

// usable says why p can no longer be applied or saved: it was closed.
func (p *Plan) usable() error {
	if p.spill != nil && p.spill.isClosed() {
		return errPlanClosed
	}
	return nil
}

// values returns what c's write sends: read back from the plan's
// temporary file when it was kept there.
func (p *Plan) values(c *Change) (cloud.Certificates, error) {
	if c.spilled == 0 {
		return c.desired, nil
	}
	if p.spill == nil {
		return cloud.Certificates{}, fmt.Errorf("%w: the plan has none", ErrSpill)
	}
	return p.spill.load(c)
}

func (sp *spill) isClosed() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.closed
}

func (sp *spillFile) close() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return nil
	}
	sp.closed = true
	sp.wbuf = nil
	if sp.f == nil {
		return nil
	}
	err := sp.f.Close()
	if sp.name != "" {
		if rerr := os.Remove(sp.name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		sp.name = ""
	}
	if err != nil {
		return fmt.Errorf("smimesync: %w: %w", ErrSpill, err)
	}
	return nil
}

// keep moves the values a planned change's write sends (c.desired) to the
// file. It fails only when the file cannot take them.
func (sp *spill) keep(c *Change) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return errPlanClosed
	}
	if n0, n1 := len(c.desiredFP[0]), len(c.desiredFP[1]); n0+n1 > 0 {
		fps := make([]Fingerprint, 0, n0+n1)
		fps = append(fps, c.desiredFP[0]...)
		fps = append(fps, c.desiredFP[1]...)
		c.desiredFP = [2][]Fingerprint{fps[:n0:n0], fps[n0:]}
	}
	if c.desired.Len() == 0 {
		return nil
	}
	off, err := sp.append(c.desired)
	if err != nil {
		return err
	}
	c.spilled, c.desired = off+1, cloud.Certificates{}
	return nil
}

// append writes one values record at the end of the file. The caller
// holds sp.mu.
func (sp *spill) append(vals cloud.Certificates) (int64, error) {
	body := binary.AppendUvarint(nil, uint64(len(vals.UserCertificate)))
	body = binary.AppendUvarint(body, uint64(len(vals.UserSMIMECertificate)))
	for _, vs := range [][][]byte{vals.UserCertificate, vals.UserSMIMECertificate} {
		for _, v := range vs {
			body = binary.AppendUvarint(body, uint64(len(v)))
			body = append(body, v...)
		}
	}
	if len(body) > 1<<31 {
		return 0, fmt.Errorf("%w: %d bytes of values for one recipient", ErrSpill, len(body))
	}
	return sp.appendRecord(body)
}

// appendRecord writes one record (its length, then body) at the end of the
// file, making the file on first use, and returns its offset. The caller
// holds sp.mu.
func (sp *spill) appendRecord(body []byte) (int64, error) {
	return sp.appendRaw(appendFrame(make([]byte, 0, 4+len(body)), body))
}

// appendFrame appends to dst the record of body: its length (4 bytes,
// big-endian), then body.
func appendFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// appendRaw writes rec, whole records, at the end of the file, making the
// file on first use, and returns its offset. The caller holds sp.mu.
func (sp *spill) appendRaw(rec []byte) (int64, error) {
	if sp.f == nil {
		f, err := os.CreateTemp("", "smimesync-plan-*.tmp")
		if err != nil {
			return 0, fmt.Errorf("%w: %w (set TMPDIR to a folder with room)", ErrSpill, err)
		}
		sp.f, sp.name = f, f.Name()
		if os.Remove(sp.name) == nil {
			sp.name = "" // unlinked while open (Unix): nothing to remove later
		}
	}
	off := sp.size + int64(len(sp.wbuf))
	if len(sp.wbuf)+len(rec) <= spillBuffer {
		sp.wbuf = append(sp.wbuf, rec...)
		return off, nil
	}
	if err := sp.flushLocked(); err != nil {
		return 0, err
	}
	if len(rec) >= spillBuffer {
		if _, err := sp.f.WriteAt(rec, off); err != nil {
			return 0, fmt.Errorf("%w: %w (set TMPDIR to a folder with room)", ErrSpill, err)
		}
		sp.size += int64(len(rec))
		return off, nil
	}
	sp.wbuf = append(sp.wbuf, rec...)
	return off, nil
}

// flushWrites writes the records waiting in wbuf: before anything is read
// back, and at the end of a plan (a disk that cannot take them fails the
// plan, not a later read).
func (sp *spill) flushWrites() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return errPlanClosed
	}
	return sp.flushLocked()
}

// flushLocked writes wbuf at sp.size. The caller holds sp.mu.
func (sp *spill) flushLocked() error {
	if len(sp.wbuf) == 0 {
		return nil
	}
	if _, err := sp.f.WriteAt(sp.wbuf, sp.size); err != nil {
		return fmt.Errorf("%w: %w (set TMPDIR to a folder with room)", ErrSpill, err)
	}
	sp.size += int64(len(sp.wbuf))
	sp.wbuf = sp.wbuf[:0]
	return nil
}

// readRecord reads back the record at off.
func (sp *spill) readRecord(off int64) ([]byte, error) {
	sp.mu.Lock()
	f, closed := sp.f, sp.closed
	var werr error
	if !closed {
		werr = sp.flushLocked()
	}
	sp.mu.Unlock()
	fail := func(format string, a ...any) ([]byte, error) {
		return nil, fmt.Errorf("%w: reading back: "+format, append([]any{ErrSpill}, a...)...)
	}
	switch {
	case closed:
		return fail("%w", errPlanClosed)
	case f == nil:
		return fail("no file")
	case werr != nil:
		return nil, werr
	}
	var head [4]byte
	if _, err := f.ReadAt(head[:], off); err != nil {
		return fail("at %d: %w", off, unexpectedEOF(err))
	}
	body := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := f.ReadAt(body, off+4); err != nil {
		return fail("at %d: %w", off, unexpectedEOF(err))
	}
	return body, nil
}

// load reads c's values back and checks them against c's fingerprints:
// all of them, or an error.
func (sp *spill) load(c *Change) (cloud.Certificates, error) {
	fail := func(format string, a ...any) (cloud.Certificates, error) {
		return cloud.Certificates{}, fmt.Errorf("%w: reading back: "+format, append([]any{ErrSpill}, a...)...)
	}
	off := c.spilled - 1
	body, err := sp.readRecord(off)
	if err != nil {
		return cloud.Certificates{}, err
	}
	var (
		out  cloud.Certificates
		lens [2]uint64
		rest = body
	)
	for i := range lens {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return fail("at %d: damaged record", off)
		}
		lens[i], rest = n, rest[k:]
	}
	if lens[0] != uint64(len(c.desiredFP[0])) || lens[1] != uint64(len(c.desiredFP[1])) {
		return fail("at %d: %d+%d values, the plan has %d+%d", off, lens[0], lens[1], len(c.desiredFP[0]), len(c.desiredFP[1]))
	}
	for i, dst := range []*[][]byte{&out.UserCertificate, &out.UserSMIMECertificate} {
		for j := range lens[i] {
			n, k := binary.Uvarint(rest)
			if k <= 0 || n > uint64(len(rest)-k) {
				return fail("at %d: damaged record", off)
			}
			v := rest[k : k+int(n) : k+int(n)]
			rest = rest[k+int(n):]
			if sha256.Sum256(v) != c.desiredFP[i][j] {
				return fail("at %d: value %s does not match its fingerprint", off, c.desiredFP[i][j])
			}
			*dst = append(*dst, v)
		}
	}
	if len(rest) != 0 {
		return fail("at %d: damaged record", off)
	}
	return out, nil
}

// spillError marks, among ReadPlan's errors, the spill's: the file read
// is not at fault.
type spillError struct{ err error }

func (e *spillError) Error() string { return e.err.Error() }
func (e *spillError) Unwrap() error { return e.err }

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
