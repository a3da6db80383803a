package smimesync

import "iter"

// EntryDigest is the 16-byte digest by which a plan knows the entries it
// only counts ([Plan.Unlisted]): the first half of the SHA-256 of the
// entry's key (its source and ID, as [PublishedKey] joins them). Two of a
// million entries share one with a probability below 10⁻²⁶. A store that
// keys its records by it (the report, package smimesync/report) finds a
// plan's unlisted entries without reading any other record.
type EntryDigest [16]byte

// DigestEntry is the EntryDigest of the entry of this source and ID.
func DigestEntry(source, id string) EntryDigest {
	return EntryDigest(hashKey(stateKey(source, id)))
}

// UnlistedDigests yields the EntryDigest of every entry the plan read and
// only counted (see [Plan.Unlisted]), in ascending byte order, each once
// per time the source returned it. It yields nothing for a plan made by
// hand.
func (p *Plan) UnlistedDigests() iter.Seq[EntryDigest] {
	return func(yield func(EntryDigest) bool) {
		if p == nil || p.unlisted == nil || !p.unlisted.sealed {
			return
		}
		// The lists hold the keys by their first byte, each sorted:
		// in turn, they are in ascending order.
		for _, list := range p.unlisted.keys {
			for _, k := range list {
				if !yield(EntryDigest(k)) {
					return
				}
			}
		}
	}
}
