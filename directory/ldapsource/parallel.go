package ldapsource

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-ldap/ldap/v3"
)

// DefaultReadConnections is how many connections a full read of Active
// Directory uses at once unless Config.ReadConnections says otherwise.
//
// Measured on Samba (10,000 users with their certificates, LDAPS, two
// cores): one paged search for all of them took 2.1–2.2 s, and two at
// once, each for half of them by uSNCreated, 1.15–1.18 s together. A
// domain controller serves each connection on its own thread.
const DefaultReadConnections = 2

// MaxReadConnections bounds Config.ReadConnections: more is a slip, not a
// tuning (each is a bound session on the domain controller).
const MaxReadConnections = 16

// rangesPerConn is how many uSNCreated ranges a parallel full read makes
// for each connection. The connections take ranges from one queue, so one
// whose ranges hold few entries takes more: the USNs of a domain's users
// are not spread evenly (other objects and every change consume USNs too).
const rangesPerConn = 4

// readPart is one paged search of a full read: a base DN and the filter.
type readPart struct {
	base, filter string
}

// readParts splits a full read into paged searches: one per base DN, or,
// on Active Directory with more than one connection, several per base DN
// by ranges of uSNCreated that cover every value once (split is then
// true). uSNCreated is set by the domain controller on every object it
// holds and never changes; the schema indexes it and does not replicate it
// (MS-ADA3 2.355: searchFlags fATTINDEX, systemFlags
// FLAG_ATTR_NOT_REPLICATED). The last range is open-ended, so an entry
// created during the read is read as a single search would read it (or
// not). One more search per base DN reads the entries without a
// uSNCreated the account may read: a server evaluates a filter on an
// attribute the account may not read as if the entry had none, and an
// access list may deny it (Samba does so; the ranges alone would then miss
// those entries, and the pass would take them for gone). So the parts
// cover every entry by construction, whatever the account may read.
//
// Not replicated, USNs are each domain controller's own: every connection
// of the read must be bound to the same one (see sameServer).
func (ps *pass) readParts(conns int) (parts []readPart, split bool) {
	p := ps.plan
	n := 1
	if conns > 1 && p.kind == ServerAD && ps.info.highestUSN > 0 {
		n = conns * rangesPerConn
	}
	parts = make([]readPart, 0, (n+1)*len(p.baseStrs))
	for _, base := range p.baseStrs {
		if n == 1 {
			parts = append(parts, readPart{base, p.filter})
			continue
		}
		step := ps.info.highestUSN/int64(n) + 1
		for i := range int64(n) {
			lo, hi := i*step, (i+1)*step-1
			var f string
			switch i {
			case 0:
				f = fmt.Sprintf("(&%s(uSNCreated<=%d))", p.filter, hi)
			case int64(n) - 1:
				f = fmt.Sprintf("(&%s(uSNCreated>=%d))", p.filter, lo)
			default:
				f = fmt.Sprintf("(&%s(uSNCreated>=%d)(uSNCreated<=%d))", p.filter, lo, hi)
			}
			parts = append(parts, readPart{base, f})
		}
		parts = append(parts, readPart{base, "(&" + p.filter + "(!(uSNCreated=*)))"})
	}
	return parts, n > 1
}

// readAll reads parts, calling fn for each entry: through the main
// connection alone when there is one part, else through up to conns
// connections at once, which take parts from one queue. The first
// connection is the main one; the others are opened as the read starts,
// and one that cannot be opened, or that reaches another domain
// controller than the main one (sameServer), is closed and the read goes
// on with the others. The first error ends the read (the others are
// cancelled) and is returned. fn is called by one goroutine at a time.
func (ps *pass) readAll(parts []readPart, conns int, fn func(readPart, *ldap.Entry) error) error {
	if conns <= 1 {
		for _, part := range parts {
			if err := ps.readPart(ps.ctx, ps.main, part, fn); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ps.ctx)
	defer cancel()
	var (
		next     atomic.Int64
		mu       sync.Mutex // serializes fn, guards first
		first    error
		wg       sync.WaitGroup
		serialFn = func(part readPart, e *ldap.Entry) error {
			mu.Lock()
			defer mu.Unlock()
			return fn(part, e)
		}
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	work := func(c conn) {
		for {
			k := int(next.Add(1)) - 1
			if k >= len(parts) || ctx.Err() != nil {
				return
			}
			if err := ps.readPart(ctx, c, parts[k], serialFn); err != nil {
				fail(err)
				return
			}
		}
	}
	// dialCtx ends the further connections' connecting (and its retries)
	// once the main connection found no part left: they would only wait.
	dialCtx, stopDialing := context.WithCancel(ctx)
	defer stopDialing()
	for range conns - 1 {
		wg.Go(func() {
			if int(next.Load()) >= len(parts) {
				return // the others took every part meanwhile
			}
			c, err := ps.extraConn(dialCtx)
			if err != nil {
				if dialCtx.Err() == nil {
					ps.s.log.Warn("ldapsource: a further connection for the full read could not be used; reading through the others",
						"url", ps.url, "err", err)
				}
				return
			}
			work(c)
		})
	}
	work(ps.main)
	stopDialing()
	wg.Wait()
	if first != nil {
		return first
	}
	// Every part was taken by a connection that finished it (a failure
	// sets first), unless the pass's context ended.
	return context.Cause(ps.ctx)
}

// readPart runs part's paged search on c under ctx.
func (ps *pass) readPart(ctx context.Context, c conn, part readPart, fn func(readPart, *ldap.Entry) error) error {
	err := ps.pagedOn(ctx, c, part.base, ldap.ScopeWholeSubtree, part.filter, ps.plan.attrs, nil,
		func(e *ldap.Entry) error { return fn(part, e) })
	if err == nil {
		return nil
	}
	if ce := noSuchBase(part.base, ps.url, err); ce != nil {
		return ce
	}
	return fmt.Errorf("ldapsource: read %s on %s: %w", part.base, ps.url, err)
}

// extraConn opens a further connection for a parallel full read and
// checks that it reached the main connection's domain controller.
func (ps *pass) extraConn(ctx context.Context) (conn, error) {
	c, url, err := ps.s.connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := ps.sameServer(ctx, c, url); err != nil {
		c.Close()
		return nil, err
	}
	ps.extraMu.Lock()
	defer ps.extraMu.Unlock()
	ps.extra = append(ps.extra, c)
	return c, nil
}

// sameServer checks that c, connected to url, reached the domain
// controller of the main connection: USNs are each domain controller's
// own, so ranges of uSNCreated taken from one split another's objects
// wrongly. The configuration may list several URLs, and one name may
// resolve to several domain controllers; the root DSE's dsServiceName
// names the one that answers.
func (ps *pass) sameServer(ctx context.Context, c conn, url string) error {
	info, err := ps.s.rootDSE(ctx, c, url)
	if err != nil {
		return err
	}
	if ps.info.dsServiceName == "" || !strings.EqualFold(info.dsServiceName, ps.info.dsServiceName) {
		return fmt.Errorf("ldapsource: %s answered as %q, not as %q (the main connection's domain controller)",
			url, info.dsServiceName, ps.info.dsServiceName)
	}
	return nil
}
