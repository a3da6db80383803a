package ldapsource

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

var (
	// ErrTimeout is wrapped when the server sent nothing for
	// Config.Timeout.
	ErrTimeout = errors.New("ldapsource: the directory server stopped answering")
	// ErrConnectionLost is wrapped when the connection dropped during a
	// pass (the server went away, or the network between).
	ErrConnectionLost = errors.New("ldapsource: connection to the directory server lost")
)

// stream runs req on c through SearchAsync and calls entry for each entry
// (with its controls) and other for each result without an entry
// (intermediate responses, and the final SearchResultDone's controls).
// Referrals are skipped with a debug log. The wait for each answer is
// bounded by Config.Timeout; the time spent in the callbacks is not.
func (s *Source) stream(ctx context.Context, c conn, req *ldap.SearchRequest,
	entry func(*ldap.Entry, []ldap.Control) error, other func([]ldap.Control) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idle atomic.Bool
	timer := time.AfterFunc(s.cfg.Timeout, func() { idle.Store(true); cancel() })
	defer timer.Stop()
	resp := c.SearchAsync(ctx, req, 64)
	for {
		timer.Reset(s.cfg.Timeout)
		ok := resp.Next()
		timer.Stop()
		if !ok {
			break
		}
		if e := resp.Entry(); e != nil {
			if err := entry(e, resp.Controls()); err != nil {
				return err
			}
			continue
		}
		if r := resp.Referral(); r != "" {
			s.log.Debug("ldapsource: skipping referral", "base", req.BaseDN, "referral", r)
			continue
		}
		if other != nil {
			if err := other(resp.Controls()); err != nil {
				return err
			}
		}
	}
	err := resp.Err()
	if c.IsClosing() {
		if err == nil {
			if err = c.GetLastError(); err == nil {
				err = errors.New("connection closed")
			}
		}
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	if err != nil {
		return err
	}
	if idle.Load() {
		return fmt.Errorf("%w for %v", ErrTimeout, s.cfg.Timeout)
	}
	// SearchAsync reports cancellation as a clean end: tell them apart.
	return context.Cause(ctx)
}

// paged runs a paged search (RFC 2696 / 1.2.840.113556.1.4.319) over the
// subtree of base, one page at a time with its own cookie loop, calling fn
// for each entry.
func (ps *pass) paged(c conn, base, filter string, attrs []string, fn func(*ldap.Entry) error) error {
	return ps.pagedScope(c, base, ldap.ScopeWholeSubtree, filter, attrs, nil, fn)
}

// pagedScope is paged with a scope and further request controls (sent
// with every page).
func (ps *pass) pagedScope(c conn, base string, scope int, filter string, attrs []string, extra []ldap.Control,
	fn func(*ldap.Entry) error) error {
	return ps.pagedOn(ps.ctx, c, base, scope, filter, attrs, extra, fn)
}

// pagedOn is pagedScope under ctx instead of the pass's context.
func (ps *pass) pagedOn(ctx context.Context, c conn, base string, scope int, filter string, attrs []string, extra []ldap.Control,
	fn func(*ldap.Entry) error) error {
	var pagingCookie []byte
	for page := 0; ; page++ {
		ctl := ldap.NewControlPaging(uint32(ps.s.cfg.PageSize))
		ctl.SetCookie(pagingCookie)
		req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false,
			filter, attrs, append([]ldap.Control{ctl}, extra...))
		var next []byte
		found := false
		err := ps.s.stream(ctx, c, req, func(e *ldap.Entry, _ []ldap.Control) error { return fn(e) },
			func(ctls []ldap.Control) error {
				if pc, ok := ldap.FindControl(ctls, ldap.ControlTypePaging).(*ldap.ControlPaging); ok {
					next, found = pc.Cookie, true
				}
				return nil
			})
		if err != nil {
			return fmt.Errorf("page %d: %w", page+1, err)
		}
		if !found {
			if page > 0 {
				return fmt.Errorf("page %d: the server's answer lacks the paged-results control", page+1)
			}
			ps.s.log.Debug("ldapsource: server ignored the paged-results control", "base", base)
		}
		if len(next) == 0 {
			return nil
		}
		pagingCookie = next
	}
}

// attrName splits an attribute description into its name and a range
// option: "userCertificate;binary" → userCertificate; "member;range=0-1499"
// → member, 0, 1499; "x;range=1500-*" → x, 1500, -1 (the last slice).
func attrName(desc string) (name string, lo, hi int, ranged bool, err error) {
	parts := strings.Split(desc, ";")
	name = parts[0]
	for _, opt := range parts[1:] {
		r, ok := strings.CutPrefix(strings.ToLower(opt), "range=")
		if !ok {
			continue // ;binary, language tags: the value is the same
		}
		a, b, ok := strings.Cut(r, "-")
		if !ok {
			return name, 0, 0, false, fmt.Errorf("malformed range option %q", opt)
		}
		if lo, err = strconv.Atoi(a); err != nil || lo < 0 {
			return name, 0, 0, false, fmt.Errorf("malformed range option %q", opt)
		}
		if b == "*" {
			hi = -1
		} else if hi, err = strconv.Atoi(b); err != nil || hi < lo-1 {
			return name, 0, 0, false, fmt.Errorf("malformed range option %q", opt)
		}
		ranged = true
	}
	return name, lo, hi, ranged, nil
}

// EntryError is a directory entry the source could not read completely.
type EntryError struct {
	// DN names the entry.
	DN string
	// Attribute names the attribute, when one is at fault.
	Attribute string
	// Err says what went wrong.
	Err error
}

// Error implements error.
func (e *EntryError) Error() string {
	if e.Attribute != "" {
		return fmt.Sprintf("ldapsource: entry %s, attribute %s: %v", e.DN, e.Attribute, e.Err)
	}
	return fmt.Sprintf("ldapsource: entry %s: %v", e.DN, e.Err)
}

// Unwrap returns the cause.
func (e *EntryError) Unwrap() error { return e.Err }

// convert turns an LDAP entry into a directory entry. Attribute names are
// matched case-insensitively, options such as ;binary are ignored, and a
// value list the server sliced (;range=lo-hi) is completed with further
// reads on the auxiliary connection: the caller must not be streaming a
// search on that connection (see convertFirst).
func (ps *pass) convert(e *ldap.Entry) (*directory.Entry, error) {
	de, todo, err := ps.convertFirst(e)
	if err != nil {
		return nil, err
	}
	if err := ps.completeRanges(de, todo); err != nil {
		return nil, err
	}
	return de, nil
}

// rangeTodo is a sliced value list still to be read, from index next on.
type rangeTodo struct {
	name string
	next int
}

// convertFirst is convert without the further reads: it returns the value
// lists still to be completed by completeRanges. go-ldap serves one
// connection with one dispatcher, so a search started in the callback of
// another search on the same connection deadlocks: a caller streaming on
// the auxiliary connection completes the ranges after its search ended.
func (ps *pass) convertFirst(e *ldap.Entry) (*directory.Entry, []rangeTodo, error) {
	de := &directory.Entry{DN: e.DN}
	var todo []rangeTodo
	for _, a := range e.Attributes {
		name, _, hi, ranged, err := attrName(a.Name)
		if err != nil {
			return nil, nil, &EntryError{DN: e.DN, Attribute: a.Name, Err: err}
		}
		ps.set(de, name, a)
		if ranged && hi >= 0 {
			todo = append(todo, rangeTodo{name, hi + 1})
		}
	}
	if de.ID == "" {
		ps.s.log.Debug("ldapsource: entry without an ID attribute; using its DN", "dn", e.DN, "attribute", ps.plan.idAttr)
		de.ID = e.DN
	}
	return de, todo, nil
}

// completeRanges reads the rest of the sliced value lists of de on the
// auxiliary connection.
func (ps *pass) completeRanges(de *directory.Entry, todo []rangeTodo) error {
	for _, m := range todo {
		if err := ps.fetchRange(de, de.DN, m.name, m.next); err != nil {
			return err
		}
	}
	return nil
}

// set stores the values of attribute name into de.
func (ps *pass) set(de *directory.Entry, name string, a *ldap.EntryAttribute) {
	if len(a.ByteValues) == 0 {
		return
	}
	if strings.EqualFold(name, ps.plan.idAttr) {
		de.ID = ps.formatID(de.DN, a.ByteValues[0])
	}
	switch {
	case strings.EqualFold(name, "mail"):
		de.Mail = a.Values[0]
	case strings.EqualFold(name, "userPrincipalName"):
		de.UserPrincipalName = a.Values[0]
	case strings.EqualFold(name, "proxyAddresses"):
		de.ProxyAddresses = append(de.ProxyAddresses, a.Values...)
	case strings.EqualFold(name, "userCertificate"):
		de.UserCertificate = append(de.UserCertificate, a.ByteValues...)
	case strings.EqualFold(name, "userSMIMECertificate"):
		de.UserSMIMECertificate = append(de.UserSMIMECertificate, a.ByteValues...)
	}
}

// formatID renders an ID value: objectGUID as a GUID string; any other
// attribute as its text when that is printable UTF-8, else (a binary
// anchor such as mS-DS-ConsistencyGuid) a 16-byte value as a GUID string
// and any other length as lowercase hex. IDs end up in JSON state, which
// would mangle invalid UTF-8.
func (ps *pass) formatID(dn string, v []byte) string {
	if strings.EqualFold(ps.plan.idAttr, "objectGUID") {
		id, err := directory.FormatGUID(v)
		if err != nil {
			ps.s.log.Warn("ldapsource: malformed objectGUID; using the DN as ID", "dn", dn, "err", err)
			return dn
		}
		return id
	}
	if printableText(v) {
		return string(v)
	}
	if id, err := directory.FormatGUID(v); err == nil {
		return id
	}
	return hex.EncodeToString(v)
}

// printableText reports whether v is non-empty UTF-8 text without control
// characters.
func printableText(v []byte) bool {
	if len(v) == 0 || !utf8.Valid(v) {
		return false
	}
	for _, r := range string(v) {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// fetchRange reads the values of name from index next on, slice by slice
// (name;range=next-*), until the server marks the last slice.
func (ps *pass) fetchRange(de *directory.Entry, dn, name string, next int) error {
	c, err := ps.aux()
	if err != nil {
		return err
	}
	for slices := 0; ; slices++ {
		want := fmt.Sprintf("%s;range=%d-*", name, next)
		if n := ps.s.cfg.RangeSize; n > 0 {
			want = fmt.Sprintf("%s;range=%d-%d", name, next, next+n-1)
		}
		req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{want}, nil)
		var got *ldap.EntryAttribute
		err := ps.s.stream(ps.ctx, c, req, func(e *ldap.Entry, _ []ldap.Control) error {
			for _, a := range e.Attributes {
				if n, _, _, _, _ := attrName(a.Name); strings.EqualFold(n, name) {
					got = a
				}
			}
			return nil
		}, nil)
		if err != nil {
			return &EntryError{DN: dn, Attribute: want, Err: err}
		}
		if got == nil {
			return &EntryError{DN: dn, Attribute: want, Err: errors.New("the server returned no further slice of a sliced value list")}
		}
		_, lo, hi, ranged, err := attrName(got.Name)
		if err != nil {
			return &EntryError{DN: dn, Attribute: got.Name, Err: err}
		}
		if !ranged || lo != next {
			return &EntryError{DN: dn, Attribute: got.Name, Err: fmt.Errorf("asked for values from %d, got %q", next, got.Name)}
		}
		ps.set(de, name, got)
		ps.s.log.Debug("ldapsource: read a value slice", "dn", dn, "attribute", got.Name, "values", len(got.ByteValues))
		if hi < 0 {
			return nil
		}
		if hi < next {
			return &EntryError{DN: dn, Attribute: got.Name, Err: errors.New("the server's value slices do not advance")}
		}
		next = hi + 1
	}
}
