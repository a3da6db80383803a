//go:build linux

package smimesync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/atomicfile"
	"github.com/smimesync/go-smimesync/smimesync"
)

// This file shows what a full disk under the state file does to a sync:
// the state and its journal live on a small tmpfs that the test fills.

// requireServersEnv turns a skip for want of privileges into a failure, as
// for the directory servers (ldaptest.RequireServersEnv).
const requireServersEnv = "SMIMESYNC_REQUIRE_SERVERS"

// mountTmpfs mounts a tmpfs of size bytes on a fresh folder and returns
// it; it is unmounted when t ends. Without the right to mount (not root,
// or a container without CAP_SYS_ADMIN) the test skips, or fails when
// SMIMESYNC_REQUIRE_SERVERS=1.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "statefs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		why := fmt.Sprintf("cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): %v", err)
		if os.Getenv(requireServersEnv) == "1" {
			t.Fatalf("%s (and %s=1 requires it)", why, requireServersEnv)
		}
		t.Skip(why)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// fill takes every free block of the file system holding dir but leave
// bytes (a multiple of the page size on tmpfs), and returns the function
// that gives the space back.
func fill(t *testing.T, dir string, leave int64) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := f.Write(buf)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(n - leave); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if got := int64(st.Bavail) * st.Bsize; got != leave {
		t.Fatalf("after filling, %d bytes are free, want %d", got, leave)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// passCookies is a source with deltas: it reads an LDIF file, hands out
// "pass N" as the cookie of its Nth pass and keeps the cookies it was given.
type passCookies struct {
	directory.LDIFFile
	mu    sync.Mutex
	given []string
}

func (p *passCookies) Read(ctx context.Context, pass directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	p.mu.Lock()
	p.given = append(p.given, string(pass.Cookie))
	next := fmt.Sprintf("pass %d", len(p.given))
	p.mu.Unlock()
	if _, err := p.LDIFFile.Read(ctx, pass, yield); err != nil {
		return directory.Result{}, err
	}
	return directory.Result{Cookie: []byte(next), Full: pass.Cookie == nil}, nil
}

func (p *passCookies) lastGiven() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.given[len(p.given)-1]
}

// noSave is a FileState whose process dies after its writes, before the
// apply's end: its records reach the journal, its Save never happens.
type noSave struct{ smimesync.FileState }

func (noSave) Save(context.Context, *smimesync.Snapshot) error {
	return errors.New("killed before saving")
}

// diskFullDirectory is the directory of a disk-full scenario: n users, each
// with an old certificate (published by the first pass) and, from the
// second pass on, a renewal.
type diskFullDirectory struct {
	src          *passCookies
	users        []*directory.Entry
	old, renewed map[string][]byte // by address
}

func newDiskFullDirectory(t *testing.T, n int) *diskFullDirectory {
	t.Helper()
	ca := newTestCA(t, "CA")
	d := &diskFullDirectory{
		src: &passCookies{LDIFFile: directory.LDIFFile{Path: filepath.Join(t.TempDir(), "users.ldif")}},
		old: map[string][]byte{}, renewed: map[string][]byte{},
	}
	for i := range n {
		name := fmt.Sprintf("user%02d", i)
		mail := name + "@example.com"
		d.old[mail] = ca.issue(t, leaf{email: mail, key: i})
		d.renewed[mail] = ca.issue(t, leaf{email: mail, key: i + 1, notAfter: testNow.Add(360 * 24 * time.Hour)})
		d.users = append(d.users, user(i, name, d.old[mail]))
	}
	d.write(t)
	return d
}

// renew adds every user's renewal to the directory.
func (d *diskFullDirectory) renew(t *testing.T) {
	t.Helper()
	for _, u := range d.users {
		u.UserCertificate = [][]byte{d.old[u.Mail], d.renewed[u.Mail]}
	}
	d.write(t)
}

func (d *diskFullDirectory) write(t *testing.T) {
	t.Helper()
	var b bytes.Buffer
	if err := directory.WriteLDIF(&b, d.users...); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(d.src.Path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// nothingValidRemoved checks that every recipient still carries its old
// certificate: it stays valid, and the directory keeps it, through every
// pass.
func (d *diskFullDirectory) nothingValidRemoved(t *testing.T, sink *cloudtest.MemorySink, when string) {
	t.Helper()
	for mail, old := range d.old {
		c, _ := sink.Get(mail)
		if !slices.ContainsFunc(c.UserCertificate, func(v []byte) bool { return bytes.Equal(v, old) }) {
			t.Errorf("%s: %s lost its valid certificate", when, mail)
		}
	}
}

// nothingWrittenTwice checks that since the sink's write number from, each
// recipient was written at most once, except the ones in allowed, which
// were written exactly twice. It returns the number of writes per address.
func nothingWrittenTwice(t *testing.T, sink *cloudtest.MemorySink, from int, allowed map[string]bool) map[string]int {
	t.Helper()
	n := writesSince(sink, from)
	for addr, k := range n {
		switch {
		case allowed[addr] && k != 2:
			t.Errorf("%s written %d times since the disk filled, want 2 (once unrecorded, once again)", addr, k)
		case !allowed[addr] && k > 1:
			t.Errorf("%s written %d times since the disk filled: written twice", addr, k)
		}
	}
	return n
}

// writesSince counts the stored writes per address from the sink's write
// number from on.
func writesSince(sink *cloudtest.MemorySink, from int) map[string]int {
	n := map[string]int{}
	for _, w := range sink.Writes()[from:] {
		if w.Err == nil {
			n[w.Addr]++
		}
	}
	return n
}

// converges runs the next pass and checks that it plans only unchanged
// recipients, and that the sink carries exactly what the directory holds
// (the old certificate and its renewal) for everyone.
// recovers is the pass after the full disk, once space is back: it
// completes and advances the cookie from where the failed pass left it
// ("pass 1"), writes again nothing but the writes that were acknowledged
// and not recorded (unrecorded) since mark, gives every user the renewal,
// and then the passes converge.
func (d *diskFullDirectory) recovers(ctx context.Context, t *testing.T, s *smimesync.Syncer, sink *cloudtest.MemorySink, mark int, unrecorded map[string]bool) {
	t.Helper()
	rep, err := s.Run(ctx)
	if err != nil || !rep.CookieAdvanced {
		t.Fatalf("the pass after the full disk: %v (cookie advanced %v)", err, rep != nil && rep.CookieAdvanced)
	}
	if got := d.src.lastGiven(); got != "pass 1" {
		t.Errorf("the pass after the full disk was given cookie %q, want %q", got, "pass 1")
	}
	n := nothingWrittenTwice(t, sink, mark, unrecorded)
	for _, u := range d.users {
		if n[u.Mail] == 0 {
			t.Errorf("%s never got its renewal", u.Mail)
		}
	}
	d.converges(t, s, sink)
}

func (d *diskFullDirectory) converges(t *testing.T, s *smimesync.Syncer, sink *cloudtest.MemorySink) {
	t.Helper()
	before := len(sink.Writes())
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("converging pass: %v", err)
	}
	for _, c := range testrows.Of(t, rep) {
		if c.Action != smimesync.ActionUnchanged {
			t.Errorf("converging pass plans %s for %s, want only unchanged", c.Action, c.User)
		}
	}
	if len(testrows.Of(t, rep)) != len(d.users) || !rep.CookieAdvanced {
		t.Errorf("converging pass: %d changes (want %d), cookie advanced %v", len(testrows.Of(t, rep)), len(d.users), rep.CookieAdvanced)
	}
	if n := len(sink.Writes()) - before; n != 0 {
		t.Errorf("converging pass wrote %d times", n)
	}
	for _, u := range d.users {
		got, _ := sink.Get(u.Mail)
		if !sameValues(got.UserCertificate, u.UserCertificate) || len(got.UserSMIMECertificate) != 0 {
			t.Errorf("%s carries %d certificates, not the %d the directory holds", u.Mail, len(got.UserCertificate), len(u.UserCertificate))
		}
	}
}

func sameValues(a, b [][]byte) bool {
	fp := func(vs [][]byte) []string {
		var out []string
		for _, v := range vs {
			h := sha256.Sum256(v)
			out = append(out, string(h[:]))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(fp(a), fp(b))
}

// TestDiskFull fills the file system under the state file during an apply.
// The sink cannot read back (like Exchange Online's), so only the state
// knows what was published. In every case Apply returns an error wrapping
// ENOSPC, the saved snapshot is byte for byte the one before the pass, the
// delta cookie does not advance, nothing valid is removed, and once space
// is back the next pass converges.
//
// Nothing is written twice when the journal has room for the pass's records
// (the snapshot alone does not fit). When the journal itself cannot take a
// record, the writes the sink acknowledged but the journal could not note
// are written again by the next pass: Apply stops starting writes at the
// first failed record, so these are at most the Concurrency writes in
// flight, and the test checks exactly which ones they are.
func TestDiskFull(t *testing.T) {
	const concurrency = 4
	for _, tt := range []struct {
		name  string
		users int
		// leave is what the filler leaves free: the journal's page(s).
		leave int64
		// journalFits: every record of the pass fits in leave.
		journalFits bool
		// crashAfterFree: the pass after the space is back dies before
		// saving; the one after it must still know every write.
		crashAfterFree bool
	}{
		{name: "snapshot does not fit, journal does", users: 8, leave: 4096, journalFits: true},
		{name: "no room for the journal", users: 8, leave: 0},
		{name: "journal fills mid-apply", users: 40, leave: 4096, crashAfterFree: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := mountTmpfs(t, 256<<10)
			st := smimesync.FileState(filepath.Join(dir, "state.json"))
			d := newDiskFullDirectory(t, tt.users)
			sink := cloudtest.NewMemorySink()
			sink.SetUnreadable(true)
			syncer := func(st smimesync.State) *smimesync.Syncer {
				s := newSyncer(d.src, sink, st)
				s.Concurrency = concurrency
				return s
			}

			// Pass 1 publishes the old certificates and saves cookie "pass 1".
			if rep, err := syncer(st).Run(ctx); err != nil || !rep.CookieAdvanced || rep.Summary.Written != tt.users {
				t.Fatalf("first pass: %v, %+v", err, rep)
			}
			saved, err := os.ReadFile(string(st))
			if err != nil {
				t.Fatal(err)
			}

			// Pass 2: every user renewed; the disk is full.
			d.renew(t)
			freeSpace := fill(t, dir, tt.leave)
			mark := len(sink.Writes())
			rep, err := syncer(st).Run(ctx)
			if err == nil {
				t.Fatal("Apply succeeded on a full disk")
			}
			t.Logf("pass on a full disk: %v", err)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Apply's error does not wrap ENOSPC: %v", err)
			}
			if rep == nil || rep.CookieAdvanced {
				t.Fatalf("report %+v: the cookie must not advance", rep)
			}
			if now, err := os.ReadFile(string(st)); err != nil || !bytes.Equal(now, saved) {
				t.Errorf("the saved state changed on a full disk (%v)", err)
			}
			snap, err := st.Load(ctx)
			if err != nil {
				t.Fatalf("state after the full disk: %v", err)
			}
			if string(snap.Cookie) != "pass 1" {
				t.Errorf("cookie after the full disk = %q, want %q", snap.Cookie, "pass 1")
			}
			d.nothingValidRemoved(t, sink, "on a full disk")

			// Which writes the sink took that the journal does not hold.
			acked := writesSince(sink, mark)
			unrecorded := map[string]bool{}
			for addr := range acked {
				id := d.id(addr)
				p, ok := snap.Published[id]
				if !ok || len(p.UserCertificate) != 2 {
					unrecorded[addr] = true
				}
			}
			t.Logf("%d users: the sink took %d writes on the full disk, the journal noted %d", tt.users, len(acked), len(acked)-len(unrecorded))
			switch {
			case tt.journalFits && (len(unrecorded) != 0 || len(acked) != tt.users):
				t.Errorf("with room for the journal: %d writes, %d unrecorded; want %d and 0", len(acked), len(unrecorded), tt.users)
			case !tt.journalFits && (len(unrecorded) == 0 || len(unrecorded) > concurrency):
				t.Errorf("%d writes unrecorded, want 1 to %d (Concurrency: the writes in flight when the journal failed)", len(unrecorded), concurrency)
			}
			if !tt.journalFits && len(acked) >= tt.users {
				t.Errorf("the apply did not stop at the failed record: %d of %d written", len(acked), tt.users)
			}

			// Space is back.
			freeSpace()
			if tt.crashAfterFree {
				// A pass that dies before saving: its journal records, appended
				// after the torn line the full disk left, must all be read back.
				if _, err := syncer(noSave{st}).Run(ctx); err == nil {
					t.Fatal("the dying pass succeeded")
				}
				if got := d.src.lastGiven(); got != "pass 1" {
					t.Errorf("the pass after the full disk was given cookie %q, want %q", got, "pass 1")
				}
				if _, err := st.Load(ctx); err != nil {
					t.Fatalf("state after a crash that followed the full disk: %v", err)
				}
			}
			d.nothingValidRemoved(t, sink, "after the full disk")
			d.recovers(ctx, t, syncer(st), sink, mark, unrecorded)
			if got := d.src.lastGiven(); got == "pass 1" {
				t.Errorf("the converging pass was given cookie %q: the cookie never advanced", got)
			}
			d.nothingValidRemoved(t, sink, "at the end")
		})
	}
}

// id returns the directory ID of the user at addr.
func (d *diskFullDirectory) id(addr string) string {
	for _, u := range d.users {
		if u.Mail == addr {
			return u.ID
		}
	}
	return ""
}

// TestDiskFullJournalTornTail: an append the full disk cut short leaves a
// line without its newline. The next record must not be glued to it: a
// torn record is dropped, a whole one (only its newline missing) kept, and
// either way the journal reads back with the new record.
func TestDiskFullJournalTornTail(t *testing.T) {
	ctx := context.Background()
	fp := func(s string) []smimesync.Fingerprint { return []smimesync.Fingerprint{sha256.Sum256([]byte(s))} }
	for _, tt := range []struct {
		name string
		tail string
		want []string // IDs Load returns after the next record
	}{
		{name: "torn record", tail: `{"g":0,"id":"b","p":{"recipi`, want: []string{"a", "c"}},
		{name: "whole record without its newline", tail: `{"g":0,"id":"b","p":{"recipient":"rb","at":"2026-06-01T12:00:00Z"}}`, want: []string{"a", "b", "c"}},
		{name: "nothing but a torn record", tail: `{"g":0,"i`, want: []string{"c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
			if !strings.HasPrefix(tt.name, "nothing") {
				if err := st.Record(ctx, "a", smimesync.Published{Recipient: "ra", UserCertificate: fp("a")}); err != nil {
					t.Fatal(err)
				}
			}
			j, err := os.OpenFile(string(st)+".journal", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := j.WriteString(tt.tail); err != nil {
				t.Fatal(err)
			}
			j.Close()
			if err := st.Record(ctx, "c", smimesync.Published{Recipient: "rc"}); err != nil {
				t.Fatal(err)
			}
			snap, err := st.Load(ctx)
			if err != nil {
				t.Fatalf("Load after a record that followed a torn line: %v", err)
			}
			got := slices.Sorted(maps.Keys(snap.Published))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Load returns %v, want %v", got, tt.want)
			}
		})
	}
}
