package ldapsource

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

// usnBounds reads the uSNCreated bounds of a filter readParts made:
// lo (0 when none) and hi (-1 when none).
var usnGE, usnLE = regexp.MustCompile(`\(uSNCreated>=(\d+)\)`), regexp.MustCompile(`\(uSNCreated<=(\d+)\)`)

func usnBounds(filter string) (lo, hi int64) {
	hi = -1
	if m := usnGE.FindStringSubmatch(filter); m != nil {
		lo, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := usnLE.FindStringSubmatch(filter); m != nil {
		hi, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return lo, hi
}

// usnDirectory is a fake AD whose users carry a uSNCreated (negative: one
// the account may not read): it answers
// the root DSE (as dc, its dsServiceName), and a paged search with the
// users whose uSNCreated its filter's bounds admit, in pages of two.
type usnDirectory struct {
	usns []int64
	// fail, when set, fails the search whose filter holds it.
	fail string
	// second, when set, makes the first search of a user range wait
	// (for at most a minute) until another connection (serveConn's id)
	// searches one too, and closes when it does.
	second chan struct{}
	mu     sync.Mutex
	first  int // the id of the connection that searched a range first; -1 before
}

// serveConn serves connection id: serve, and the wait for a second
// connection.
func (d *usnDirectory) serveConn(id int, dc string) func(req *ldap.SearchRequest) ([]fakeResult, error) {
	serve := d.serve(dc)
	return func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if req.BaseDN != "" && d.second != nil {
			d.mu.Lock()
			switch {
			case d.first < 0:
				d.first = id
				d.mu.Unlock()
				select {
				case <-d.second:
				case <-time.After(time.Minute):
				}
			case d.first != id:
				select {
				case <-d.second:
				default:
					close(d.second)
				}
				d.mu.Unlock()
			default:
				d.mu.Unlock()
			}
		}
		return serve(req)
	}
}

func (d *usnDirectory) serve(dc string) func(req *ldap.SearchRequest) ([]fakeResult, error) {
	return func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if res, ok := adRootDSE(req); ok {
			for _, a := range res[0].entry.Attributes {
				if a.Name == "dsServiceName" {
					a.Values, a.ByteValues = []string{dc}, [][]byte{[]byte(dc)}
				}
			}
			return res, nil
		}
		if d.fail != "" && strings.Contains(req.Filter, d.fail) {
			return nil, errors.New("the server fails this range")
		}
		lo, hi := usnBounds(req.Filter)
		without := strings.Contains(req.Filter, "(!(uSNCreated=*))")
		var out []fakeResult
		for i, usn := range d.usns {
			switch {
			case !strings.Contains(req.Filter, "uSNCreated"):
				// Not split: every user.
			case without != (usn < 0):
				// A negative USN is one the account may not read: the
				// user matches (!(uSNCreated=*)) and no range.
				continue
			case !without && (usn < lo || (hi >= 0 && usn > hi)):
				continue
			}
			out = append(out, fakeResult{entry: entry(fmt.Sprintf("CN=u%d,OU=People,DC=example,DC=com", i), map[string][][]byte{
				"objectGUID": {[]byte(fmt.Sprintf("%016d", i))},
				"mail":       vals(fmt.Sprintf("u%d@example.com", i)),
			})})
		}
		return append(out, pagedDone("")), nil
	}
}

// dc1 is the dsServiceName of the main connection's domain controller.
const dc1 = "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Site,CN=Sites,CN=Configuration,DC=example,DC=com"

// TestParallelFullRead: a full read of AD through several connections
// splits the filter into uSNCreated ranges that read every user once
// (those created after the root DSE's highestCommittedUSN, 4242, too),
// through every connection.
func TestParallelFullRead(t *testing.T) {
	d := &usnDirectory{}
	for i := range 200 {
		d.usns = append(d.usns, int64(i*23)) // 0 … 4577: past 4242
	}
	d.usns[17], d.usns[150] = -1, -1 // unreadable
	var mu sync.Mutex
	var conns []*fakeConn
	for _, n := range []int{1, 2, 3, MaxReadConnections} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			conns = nil
			d.second, d.first = nil, -1
			if n > 1 {
				d.second = make(chan struct{})
			}
			s, _ := newFakeSource(t, Config{BaseDN: StringList{"OU=People,DC=example,DC=com"}, ReadConnections: n, Delta: DeltaNone}, nil)
			s.dial = func(context.Context, string) (conn, error) {
				mu.Lock()
				defer mu.Unlock()
				c := &fakeConn{serve: d.serveConn(len(conns), dc1)}
				conns = append(conns, c)
				return c, nil
			}
			seen := map[string]int{}
			res, err := s.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error {
				seen[e.ID]++
				return nil
			})
			if err != nil || !res.Full {
				t.Fatalf("Read: full %v, %v", res.Full, err)
			}
			if len(seen) != len(d.usns) {
				t.Errorf("%d users read, want %d", len(seen), len(d.usns))
			}
			for id, k := range seen {
				if k != 1 {
					t.Errorf("%s read %d times", id, k)
				}
			}
			searched := 0
			parts := 0
			for _, c := range conns {
				n := 0
				for _, req := range c.searches {
					if req.BaseDN == "OU=People,DC=example,DC=com" {
						n++
					}
				}
				if n > 0 {
					searched++
				}
				parts += n
			}
			wantParts := n*rangesPerConn + 1 // and (!(uSNCreated=*))
			if n == 1 {
				wantParts = 1
			}
			if parts != wantParts {
				t.Errorf("%d paged searches, want %d", parts, wantParts)
			}
			// The first connection to read a range waited for another
			// one's: at least two read ranges.
			if n > 1 && searched < 2 {
				t.Errorf("the ranges were read through %d connection(s) of %d", searched, n)
			}
		})
	}
}

// TestParallelFullReadFails: one range that fails ends the read with its
// error (the other connection's search is cancelled, nothing hangs).
func TestParallelFullReadFails(t *testing.T) {
	// The fourth of the eight ranges of two connections (4242 is the
	// fake root DSE's highestCommittedUSN).
	d := &usnDirectory{fail: fmt.Sprintf("(uSNCreated>=%d)", 3*(4242/(2*rangesPerConn)+1))}
	for i := range 100 {
		d.usns = append(d.usns, int64(i*43))
	}
	s, _ := newFakeSource(t, Config{BaseDN: StringList{"OU=People,DC=example,DC=com"}, ReadConnections: 2, Delta: DeltaNone}, nil)
	s.dial = func(context.Context, string) (conn, error) { return &fakeConn{serve: d.serve(dc1)}, nil }
	_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "the server fails this range") {
		t.Fatalf("Read: %v, want the failing range's error", err)
	}
}
