package ldapsource

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

// openLDAPRootDSE answers a root DSE search like slapd: no AD capability,
// no dsServiceName, no highestCommittedUSN.
func openLDAPRootDSE(req *ldap.SearchRequest) ([]fakeResult, bool) {
	if req.BaseDN != "" || req.Scope != ldap.ScopeBaseObject {
		return nil, false
	}
	return []fakeResult{{entry: entry("", map[string][][]byte{
		"namingContexts":   vals("dc=example,dc=com"),
		"supportedControl": vals(ldap.ControlTypePaging),
	})}}, true
}

// TestParallelOpenLDAPSeveralBases: OpenLDAP reads through one connection
// (README, doc.go, Config.ReadConnections), also with several base DNs:
// no further connection is opened, and no warning says one "could not be
// used" on every pass. The main connection's first search waits until
// every other goroutine of the read is blocked (synctest.Wait), so a
// further connection, if the read opens one, is opened before the main
// connection could take every part.
func TestParallelOpenLDAPSeveralBases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bases := []string{"ou=a,dc=example,dc=com", "ou=b,dc=example,dc=com"}
		release := make(chan struct{})
		var once sync.Once
		serve := func(req *ldap.SearchRequest) ([]fakeResult, error) {
			if res, ok := openLDAPRootDSE(req); ok {
				return res, nil
			}
			once.Do(func() { <-release })
			return []fakeResult{{entry: entry("uid=u,"+req.BaseDN, map[string][][]byte{
				"entryUUID": vals("id-" + req.BaseDN),
				"mail":      vals("u@" + req.BaseDN),
			})}, pagedDone("")}, nil
		}
		var dials atomic.Int32
		s, logs := newFakeSource(t, Config{BaseDN: StringList(bases), ReadConnections: DefaultReadConnections, Delta: DeltaNone}, nil)
		s.dial = func(context.Context, string) (conn, error) {
			dials.Add(1)
			return &fakeConn{serve: serve}, nil
		}
		n := 0
		done := make(chan error, 1)
		go func() {
			_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { n++; return nil })
			done <- err
		}()
		synctest.Wait()
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n != len(bases) {
			t.Fatalf("%d entries, want %d", n, len(bases))
		}
		if d := dials.Load(); d != 1 {
			t.Errorf("OpenLDAP with %d base DNs: %d connections opened, want 1", len(bases), d)
		}
		if strings.Contains(logs.String(), "could not be used") {
			t.Errorf("OpenLDAP with %d base DNs: a warning about a further connection:\n%s", len(bases), logs)
		}
	})
}

// TestParallelPendingDialDoesNotHoldRead: once the main connection has
// read every part, a further connection still connecting (a DC slow to
// accept, connect's retries and backoff) is given up: the read does not
// wait for it. The further dial here blocks until its context ends; a
// watchdog (not a timing assertion: the read needs no time at all)
// releases it if nothing else does.
func TestParallelPendingDialDoesNotHoldRead(t *testing.T) {
	d := &usnDirectory{}
	for i := range 20 {
		d.usns = append(d.usns, int64(i*200))
	}
	var dials atomic.Int32
	released := make(chan string, 1)
	watchdog := make(chan struct{})
	dialing := make(chan struct{})
	var dialOnce sync.Once
	s, _ := newFakeSource(t, Config{BaseDN: StringList{"OU=People,DC=example,DC=com"}, ReadConnections: 2, Delta: DeltaNone}, nil)
	s.dial = func(ctx context.Context, _ string) (conn, error) {
		if dials.Add(1) == 1 {
			// The main connection's first range waits until the
			// further connection is being dialed.
			serve := d.serve(dc1)
			var once sync.Once
			return &fakeConn{serve: func(req *ldap.SearchRequest) ([]fakeResult, error) {
				if req.BaseDN != "" {
					once.Do(func() { <-dialing })
				}
				return serve(req)
			}}, nil
		}
		dialOnce.Do(func() { close(dialing) })
		var how string
		select {
		case <-ctx.Done():
			how = "cancelled"
		case <-watchdog:
			how = "watchdog"
		}
		select {
		case released <- how:
		default: // connect's retries dial again
		}
		return nil, errors.New("the DC does not answer (" + how + ")")
	}
	done := make(chan error, 1)
	n := 0
	go func() {
		_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { n++; return nil })
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		close(watchdog)
		err = <-done
		t.Errorf("the read waited for a further connection's dial after the main connection had read every part")
	}
	if err != nil {
		t.Fatal(err)
	}
	if n != len(d.usns) {
		t.Errorf("%d entries, want %d", n, len(d.usns))
	}
	if how := <-released; how != "cancelled" {
		t.Errorf("the further dial ended by %s, not by the read cancelling it", how)
	}
}

// TestParallelOtherDCDeterministic: a further connection that reaches
// another domain controller (whose USNs are its own) is not used; the read
// goes through the main connection and still reads every user once. The
// main connection's first range waits until the further connection has
// read its root DSE, so the further connection is always opened.
func TestParallelOtherDCDeterministic(t *testing.T) {
	d := &usnDirectory{}
	for i := range 50 {
		d.usns = append(d.usns, int64(i*80))
	}
	const dc2 = "CN=NTDS Settings,CN=DC2,CN=Servers,CN=Site,CN=Sites,CN=Configuration,DC=example,DC=com"
	var (
		mu        sync.Mutex
		dials     int
		other     *fakeConn
		otherSeen = make(chan struct{})
		once      sync.Once
	)
	s, logs := newFakeSource(t, Config{BaseDN: StringList{"OU=People,DC=example,DC=com"}, ReadConnections: 2, Delta: DeltaNone}, nil)
	s.dial = func(context.Context, string) (conn, error) {
		mu.Lock()
		defer mu.Unlock()
		dials++
		if dials == 1 {
			main := d.serve(dc1)
			return &fakeConn{serve: func(req *ldap.SearchRequest) ([]fakeResult, error) {
				if req.BaseDN != "" {
					select {
					case <-otherSeen:
					case <-time.After(time.Minute):
					}
				}
				return main(req)
			}}, nil
		}
		srv := d.serve(dc2)
		other = &fakeConn{serve: func(req *ldap.SearchRequest) ([]fakeResult, error) {
			res, err := srv(req)
			if req.BaseDN == "" {
				once.Do(func() { close(otherSeen) })
			}
			return res, err
		}}
		return other, nil
	}
	seen := map[string]int{}
	if _, err := s.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error { seen[e.ID]++; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(d.usns) {
		t.Errorf("%d users read, want %d", len(seen), len(d.usns))
	}
	if other == nil {
		t.Fatal("no further connection was opened")
	}
	for _, req := range other.searches {
		if req.BaseDN != "" {
			t.Errorf("the other DC's connection was searched: %s %s", req.BaseDN, req.Filter)
		}
	}
	if !strings.Contains(logs.String(), "DC2") {
		t.Errorf("the log does not say which DC the further connection reached:\n%s", logs)
	}
}
