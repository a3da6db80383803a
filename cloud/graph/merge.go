package graph

import (
	"encoding/hex"
	"slices"
	"strings"
)

// managedSet decides which certificateUserIds values a sink manages: it
// removes those it no longer derives, and leaves every other value alone.
//
// A value is managed when it is of the configured format: for
// FormatIssuerSerial "X509:<I>issuer<SR>hex" (not the IssuerAndSubject
// form "X509:<I>…<S>…"), with an issuer among ManagedIssuers when that
// list is set; for the other formats, every value with the format's prefix
// ("X509:<SKI>", "X509:<SHA1-PUKEY>", "X509:<RFC822>"). Values of other
// mappings ("X509:<PN>upn", "X509:<S>subject", …) are never managed.
type managedSet struct {
	format  Format
	issuers map[string]bool // nil: every issuer
}

func newManagedSet(c CertificateUserIDs) managedSet {
	m := managedSet{format: c.Format}
	if m.format == "" {
		m.format = FormatIssuerSerial
	}
	if m.format == FormatIssuerSerial && len(c.ManagedIssuers) > 0 {
		m.issuers = map[string]bool{}
		for _, i := range c.ManagedIssuers {
			m.issuers[strings.TrimSpace(i)] = true
		}
	}
	return m
}

func (m managedSet) managed(v string) bool {
	p := m.format.prefix()
	if !strings.HasPrefix(v, p) {
		return false
	}
	if m.format != FormatIssuerSerial {
		return true
	}
	rest := v[len(p):]
	i := strings.LastIndex(rest, "<SR>")
	if i < 0 {
		return false
	}
	if _, err := hex.DecodeString(rest[i+len("<SR>"):]); err != nil || i+len("<SR>") == len(rest) {
		return false
	}
	return m.issuers == nil || m.issuers[rest[:i]]
}

// merge returns the list to write: the values of current the sink does not
// manage, in their order, then the derived values, at most maxValues in
// all and without duplicates. Derived values that do not fit are returned
// in dropped: unmanaged values are never pushed out, since someone else put
// them there.
func (m managedSet) merge(current, derived []string) (next, dropped []string) {
	for _, v := range current {
		if !m.managed(v) && !slices.Contains(next, v) {
			next = append(next, v)
		}
	}
	for _, v := range derived {
		if slices.Contains(next, v) {
			continue
		}
		if len(next) >= maxValues {
			dropped = append(dropped, v)
			continue
		}
		next = append(next, v)
	}
	return next, dropped
}

// sameValues reports whether a and b hold the same values, in any order.
func sameValues(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
