package ldapsource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

// raceDC is a fake AD DC whose DirSync behaves as Samba's does under
// concurrent writes: the cookie's high-water mark is the sequence number
// when the search ends, which may count a change the search did not see.
type raceDC struct {
	mu   sync.Mutex
	seq  int64
	objs map[string]*raceObj // by name
	// duringFull, when set, runs once as a full pass starts reading
	// (after its mark).
	duringFull func()
}

type raceObj struct {
	guid    []byte
	dn      string
	usn     int64
	created int64
	deleted bool
	// hidden keeps the object's latest change out of search results: it
	// is committed to the sequence number, not yet to the data.
	hidden bool
}

func (dc *raceDC) change(name string, hidden bool) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	dc.seq++
	o := dc.objs[name]
	if o == nil {
		g := make([]byte, 16)
		g[0], g[15] = byte(len(dc.objs)+1), 0x42
		o = &raceObj{guid: g, dn: "CN=" + name + "," + staffOU, created: dc.seq}
		dc.objs[name] = o
	}
	o.usn, o.hidden = dc.seq, hidden
}

func (dc *raceDC) reveal(name string) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	dc.objs[name].hidden = false
}

func (dc *raceDC) remove(name string) {
	dc.change(name, false)
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o := dc.objs[name]
	o.deleted = true
	o.dn = "CN=" + name + "\\0ADEL:x,CN=Deleted Objects,DC=example,DC=com"
}

// move gives name a new DN outside the scope.
func (dc *raceDC) move(name string) {
	dc.change(name, false)
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o := dc.objs[name]
	o.dn = "CN=" + name + ",OU=Elsewhere,DC=example,DC=com"
}

// dirsyncEntry is o as DirSync returns it to a request from USN from:
// whenCreated only when the object is newer than that.
func (o *raceObj) dirsyncEntry(from int64) *ldap.Entry {
	e := o.entry()
	if !o.deleted {
		e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: "parentGUID", ByteValues: [][]byte{make([]byte, 16)}, Values: []string{""}})
		if o.created > from {
			e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: "whenCreated", ByteValues: vals("20261127000000.0Z"), Values: []string{"20261127000000.0Z"}})
		}
	}
	return e
}

func (o *raceObj) entry() *ldap.Entry {
	attrs := map[string][][]byte{"objectGUID": {o.guid}, "uSNChanged": vals(strconv.FormatInt(o.usn, 10))}
	if o.deleted {
		attrs["isDeleted"] = vals("TRUE")
	} else {
		name := strings.TrimPrefix(strings.SplitN(o.dn, ",", 2)[0], "CN=")
		attrs["mail"] = vals(name + "@example.com")
	}
	return entry(o.dn, attrs)
}

// source returns a Source reading staffOU from dc.
func (dc *raceDC) source(t *testing.T) (*Source, *bytes.Buffer) {
	fc := &fakeConn{}
	// adDeltaServe answers the mark itself; let the fake DC answer it.
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if req.Filter == noMatch {
			return dc.serve(req)
		}
		return adDeltaServe(dc.serve)(req)
	}
	return newFakeSource(t, Config{BaseDN: StringList{staffOU}}, fc)
}

func (dc *raceDC) serve(req *ldap.SearchRequest) ([]fakeResult, error) {
	if f := dc.duringFull; f != nil && !hasControl(req, ldap.ControlTypeDirSync) && !strings.Contains(req.Filter, "objectGUID=") {
		dc.duringFull = nil
		f()
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	visible := func(o *raceObj, from int64) bool { return !o.hidden && o.usn > from }
	switch {
	case hasControl(req, ldap.ControlTypeDirSync):
		from := int64(0)
		if c := ldap.FindControl(req.Controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync).Cookie; len(c) > 0 {
			from, _ = strconv.ParseInt(strings.TrimPrefix(string(c), "hw="), 10, 64)
		}
		var out []fakeResult
		if req.Filter != noMatch {
			for _, o := range dc.objs {
				if visible(o, from) {
					out = append(out, fakeResult{entry: o.dirsyncEntry(from)})
				}
			}
		}
		// The high-water mark is read after the search, as Samba does.
		return append(out, fakeResult{controls: []ldap.Control{&ldap.ControlDirSync{Cookie: []byte(fmt.Sprintf("hw=%d", dc.seq))}}}), nil
	case strings.Contains(req.Filter, "objectGUID="):
		var out []fakeResult
		for _, o := range dc.objs {
			var esc strings.Builder
			for _, b := range o.guid {
				fmt.Fprintf(&esc, `\%02x`, b)
			}
			if !o.deleted && !o.hidden && strings.HasSuffix(o.dn, staffOU) && strings.Contains(req.Filter, esc.String()) {
				out = append(out, fakeResult{entry: o.entry()})
			}
		}
		return append(out, pagedDone("")), nil
	default: // a full pass
		var out []fakeResult
		for _, o := range dc.objs {
			if !o.deleted && visible(o, 0) {
				out = append(out, fakeResult{entry: o.entry()})
			}
		}
		return append(out, pagedDone("")), nil
	}
}

// TestDeltaOverlap: a change the DirSync cookie ran ahead of (Samba under
// concurrent writes) still comes, in the next delta; and every change,
// though each delta reads the previous one's again, comes exactly once.
func TestDeltaOverlap(t *testing.T) {
	dc := &raceDC{objs: map[string]*raceObj{}}
	dc.change("alice", false)
	dc.change("bob", false)
	s, logs := dc.source(t)
	got, res, err := readPass(t, s, nil)
	if err != nil || !res.Full || len(got) != 2 {
		t.Fatalf("full pass: %d entries, full %v, err %v", len(got), res.Full, err)
	}
	cookie := res.Cookie
	names := func(es []*directory.Entry) string {
		var out []string
		for _, e := range es {
			n := strings.TrimPrefix(strings.SplitN(e.DN, ",", 2)[0], "CN=")
			n, _, _ = strings.Cut(n, "\\0A")
			if e.Deleted {
				n = "-" + n
			}
			out = append(out, n)
		}
		return strings.Join(out, " ")
	}
	for i, step := range []struct {
		before func()
		want   string
	}{
		{func() { dc.change("alice", false) }, "alice"},
		{func() {}, ""},                                 // reads alice's change again, and drops it
		{func() { dc.change("bob", true) }, ""},         // bob's change is below the cookie, unseen
		{func() { dc.reveal("bob") }, "bob"},            // the overlap brings it
		{func() {}, ""},                                 // and only once
		{func() { dc.change("carol", false) }, "carol"}, // a new user
		{func() { dc.change("carol", false) }, "carol"}, // changed again in the overlap: comes again
		{func() { dc.remove("alice") }, "-alice"},       // a deletion
		{func() {}, ""},                                 // once
		{func() { dc.change("bob", false); dc.remove("carol") }, "bob -carol"},
		{func() {}, ""},
		{func() { dc.change("dave", false) }, "dave"}, // new
		{func() { dc.move("dave") }, "-dave"},         // and at once moved out of scope
		{func() {}, ""},
	} {
		step.before()
		got, res, err := readPass(t, s, cookie)
		if err != nil || res.Full {
			t.Fatalf("delta %d: full %v, err %v\n%s", i+1, res.Full, err, logs)
		}
		sortEntries(got)
		if n := names(got); n != step.want {
			t.Errorf("delta %d yielded %q, want %q", i+1, n, step.want)
		}
		cookie = res.Cookie
	}
}

func sortEntries(es []*directory.Entry) {
	for i := range es {
		for j := i + 1; j < len(es); j++ {
			if es[j].DN < es[i].DN {
				es[i], es[j] = es[j], es[i]
			}
		}
	}
}

// TestDeltaAfterFullMovedOut: a user created while the full pass read
// (after its mark), so yielded by it, and moved out of scope before the
// first delta, is reported Deleted by that delta though it looks new.
func TestDeltaAfterFullMovedOut(t *testing.T) {
	dc := &raceDC{objs: map[string]*raceObj{}}
	dc.change("alice", false)
	dc.duringFull = func() { dc.change("frank", false) }
	s, logs := dc.source(t)
	got, res, err := readPass(t, s, nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("full pass: %d entries (want alice and frank), err %v", len(got), err)
	}
	dc.move("frank")
	got, _, err = readPass(t, s, res.Cookie)
	if err != nil {
		t.Fatalf("delta: %v\n%s", err, logs)
	}
	if len(got) != 1 || !got[0].Deleted || !strings.Contains(got[0].DN, "frank") {
		t.Errorf("delta yielded %+v, want frank as Deleted", got)
	}
}

// TestOverlapYieldOrder: within one pass the latest state of an entry
// wins, even when it equals what the previous pass yielded.
func TestOverlapYieldOrder(t *testing.T) {
	var got []string
	ps := &pass{s: &Source{log: slog.New(slog.NewTextHandler(io.Discard, nil))}, yieldFn: func(e *directory.Entry) error {
		got = append(got, fmt.Sprintf("%s deleted=%v", e.ID, e.Deleted))
		return nil
	}}
	ov := newOverlap(&cookie{Seen: map[string]int64{"x": 0}}) // the previous pass yielded x deleted
	for _, step := range []struct {
		deleted bool
		usn     int64
	}{{false, 7}, {true, 0}, {true, 0}} { // undeleted, deleted again, the same tombstone once more
		if err := ov.yield(ps, &directory.Entry{ID: "X", Deleted: step.deleted}, step.usn); err != nil {
			t.Fatal(err)
		}
	}
	if want := "X deleted=false,X deleted=true"; strings.Join(got, ",") != want {
		t.Errorf("yielded %q, want %q", strings.Join(got, ","), want)
	}
}

// TestUSNFirstTombstone: the full pass's probe saw no tombstone (a new
// domain has none), so the cookie says deletions are not visible; a usn
// delta still asks for recent ones, yields the first, and from then on
// counts on them.
func TestUSNFirstTombstone(t *testing.T) {
	tomb := entry("CN=x\\0ADEL:…,CN=Deleted Objects,DC=example,DC=com", map[string][][]byte{"objectGUID": {staffGUID}, "isDeleted": vals("TRUE")})
	deleted := false
	fc := &fakeConn{}
	fc.serve = adDeltaServe(func(req *ldap.SearchRequest) ([]fakeResult, error) {
		switch {
		case strings.HasPrefix(req.BaseDN, "<WKGUID="+deletedObjectsWKGUID):
			if !deleted {
				return []fakeResult{pagedDone("")}, nil
			}
			if !strings.Contains(req.Filter, "uSNChanged") {
				return []fakeResult{{entry: tomb}}, nil // the full pass's probe
			}
			return []fakeResult{{entry: tomb}, pagedDone("")}, nil
		case hasControl(req, ldap.ControlTypeDirSync):
			return nil, ldap.NewError(ldap.LDAPResultInsufficientAccessRights, errors.New("no DirSync for you"))
		}
		return []fakeResult{pagedDone("")}, nil
	})
	s, logs := newFakeSource(t, Config{BaseDN: StringList{staffOU}, Delta: DeltaUSN}, fc)
	_, res, err := readPass(t, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := decodeCookie(res.Cookie); err != nil || c.Kind != DeltaUSN || c.Tombstones {
		t.Fatalf("full pass cookie %s (%v): want usn, tombstones not seen", res.Cookie, err)
	}
	deleted = true
	got, res, err := readPass(t, s, res.Cookie)
	if err != nil || res.Full {
		t.Fatalf("delta: full %v, err %v\n%s", res.Full, err, logs)
	}
	if len(got) != 1 || !got[0].Deleted {
		t.Fatalf("delta yielded %+v, want the deletion", got)
	}
	if c, _ := decodeCookie(res.Cookie); !c.Tombstones {
		t.Errorf("the cookie after a tombstone was read still says tombstones are not visible")
	}
}
