package graph

import (
	"encoding/hex"
	"slices"
	"strings"

	"github.com/smimesync/go-smimesync/internal/certparse"
)

// managedSet decides which certificateUserIds values a sink manages: it
// removes those it no longer derives, and leaves every other value alone.
//
// A value is managed only when it is of the configured format (for
// FormatIssuerSerial "X509:<I>issuer<SR>hex", not the IssuerAndSubject
// form "X509:<I>…<S>…"; for the other formats the format's prefix
// "X509:<SKI>", "X509:<SHA1-PUKEY>", "X509:<RFC822>") and, besides:
//
//   - FormatIssuerSerial: its issuer is among ManagedIssuers when that
//     list is set; otherwise any issuer with ManageAllOfFormat; otherwise
//     only the issuer of one of the certificates being written to this
//     user in this Write (a renewal replaces the same CA's old binding,
//     a partner CA's or national ID card's binding stays);
//   - the other formats (they carry no issuer): any value with
//     ManageAllOfFormat; otherwise only the values derived from the
//     certificates being written, so nothing is ever removed.
//
// In every format, a value that is one of the values being written in
// another spelling (lower-case hex; see [sameBinding]) is managed too: it
// is replaced once by the spelling the sink derives, never kept beside it
// as a duplicate Entra would refuse.
//
// Values of other mappings ("X509:<PN>upn", "X509:<S>subject", …) are never
// managed. Following FACTS.md (keep other CAs' certificates unless told
// otherwise), the default removes nothing it cannot tie to a CA it is
// writing for; the price is that when a user loses all certificates, the
// old bindings stay unless ManagedIssuers names their CA.
type managedSet struct {
	format  Format
	issuers map[string]bool // ManagedIssuers; nil when not set
	all     bool            // ManageAllOfFormat
}

func newManagedSet(c CertificateUserIDs) managedSet {
	m := managedSet{format: c.Format, all: c.ManageAllOfFormat}
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

// writing is what one Write writes: the values derived from its
// certificates, and those certificates' issuers (as [IssuerString] writes
// them).
type writing struct {
	derived []string
	issuers map[string]bool
}

// newWriting returns the writing of certs (DER) whose values are derived.
// A certificate that does not parse, or whose issuer cannot be written,
// adds no issuer.
func newWriting(certs [][]byte, derived []string) writing {
	w := writing{derived: derived, issuers: map[string]bool{}}
	for _, der := range certs {
		c, _, err := certparse.Parse(der) // as Values parses them
		if err != nil {
			continue
		}
		if i, err := IssuerString(c.RawIssuer); err == nil {
			w.issuers[i] = true
		}
	}
	return w
}

// managed reports whether the sink manages v in a Write that writes w.
func (m managedSet) managed(v string, w writing) bool {
	p := m.format.prefix()
	if !strings.HasPrefix(v, p) {
		return false
	}
	if m.format != FormatIssuerSerial {
		return m.all || m.derives(v, w)
	}
	if m.derives(v, w) {
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
	issuer := rest[:i]
	switch {
	case m.issuers != nil:
		return m.issuers[issuer]
	case m.all:
		return true
	}
	return w.issuers[issuer]
}

// derives reports whether v is the same binding as one of w's derived
// values, in any spelling [sameBinding] takes for the same: the sink
// manages it, so a value spelt otherwise (lower-case hex) is replaced by
// the derived spelling rather than kept beside it as a duplicate.
func (m managedSet) derives(v string, w writing) bool {
	return slices.ContainsFunc(w.derived, func(d string) bool { return sameBinding(m.format, v, d) })
}

// merge returns the list to write: the values of current the sink does not
// manage in a Write that writes w, in their order, then w's derived
// values, at most maxValues in all and without duplicates. Derived values
// that do not fit are returned in dropped: unmanaged values are never
// pushed out, since someone else put them there.
func (m managedSet) merge(current []string, w writing) (next, dropped []string) {
	for _, v := range current {
		if !m.managed(v, w) && !slices.Contains(next, v) {
			next = append(next, v)
		}
	}
	for _, v := range w.derived {
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
