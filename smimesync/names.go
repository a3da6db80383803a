package smimesync

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// sameName reports whether two DER-encoded names (RDNSequences) are the
// same name as RFC 5280 section 7.1 compares them: the same number of
// RDNs, in the same order, each with the same attributes (types and
// values); string values compared after folding case and treating runs of
// white space as one space, leading and trailing white space ignored,
// whatever string type encodes them (PrintableString, UTF8String, …).
// An empty name matches nothing, and a name that does not parse matches
// only its own bytes.
func sameName(a, b []byte) bool {
	if emptyName(a) || emptyName(b) {
		return false
	}
	if bytes.Equal(a, b) {
		return true
	}
	var ra, rb pkix.RDNSequence
	if rest, err := asn1.Unmarshal(a, &ra); err != nil || len(rest) > 0 {
		return false
	}
	if rest, err := asn1.Unmarshal(b, &rb); err != nil || len(rest) > 0 {
		return false
	}
	if len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		if !sameRDN(ra[i], rb[i]) {
			return false
		}
	}
	return true
}

// sameRDN compares two relative distinguished names: sets, so their
// attributes are compared in OID order.
func sameRDN(a, b pkix.RelativeDistinguishedNameSET) bool {
	if len(a) != len(b) {
		return false
	}
	byOID := func(x, y pkix.AttributeTypeAndValue) int { return slices.Compare(x.Type, y.Type) }
	a, b = slices.SortedFunc(slices.Values(a), byOID), slices.SortedFunc(slices.Values(b), byOID)
	for i := range a {
		if !a[i].Type.Equal(b[i].Type) {
			return false
		}
		sa, okA := a[i].Value.(string)
		sb, okB := b[i].Value.(string)
		switch {
		case okA && okB:
			if !strings.EqualFold(foldSpace(sa), foldSpace(sb)) {
				return false
			}
		case okA != okB:
			return false
		default:
			if !reflect.DeepEqual(a[i].Value, b[i].Value) {
				return false
			}
		}
	}
	return true
}

// foldSpace trims white space and turns each run of it into one space.
func foldSpace(s string) string {
	return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
}

// emptyName reports whether a DER-encoded name has no attribute at all
// (or no bytes).
func emptyName(raw []byte) bool {
	if len(raw) == 0 {
		return true
	}
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &rdns); err != nil {
		return false
	}
	for _, rdn := range rdns {
		if len(rdn) > 0 {
			return false
		}
	}
	return true
}
