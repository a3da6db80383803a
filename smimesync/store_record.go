package smimesync

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// A [BoltState] keeps each Published record (bucketPublished) in a compact
// binary layout rather than as JSON: an unchanged pass reads the record of
// every entry it takes on trust from its memo, and decoding JSON was most
// of what such a read cost. A record written as JSON (by this package
// before the binary layout; every such record starts with '{') is still
// read, and is rewritten in the binary layout when its entry's record is
// next saved.
//
// The layout is the version byte (publishedRecordVersion), then Recipient,
// At (as its MarshalText, the text JSON holds: the same instant and zone
// come back), User, Name and Kind, each preceded by its length (a
// uvarint), then UserCertificate and UserSMIMECertificate, each as the
// number of fingerprints (a uvarint) and the fingerprints, 32 bytes each.
// Nothing follows.

// publishedRecordVersion is the first byte of a binary Published record:
// never '{', the first byte of a JSON one.
const publishedRecordVersion = 1

// errPublishedRecord is a binary Published record this package cannot
// read.
var errPublishedRecord = errors.New("not a state record of this version")

// encodePublished lays p out as a binary record.
func encodePublished(p Published) ([]byte, error) {
	at, err := p.At.MarshalText()
	if err != nil {
		return nil, fmt.Errorf("smimesync: the record of %s: %w", p.Recipient, err)
	}
	strs := [...][]byte{[]byte(p.Recipient), at, []byte(p.User), []byte(p.Name), []byte(p.Kind)}
	n := 1 + 2*binary.MaxVarintLen64 + 32*(len(p.UserCertificate)+len(p.UserSMIMECertificate))
	for _, s := range strs {
		n += binary.MaxVarintLen64 + len(s)
	}
	b := make([]byte, 0, n)
	b = append(b, publishedRecordVersion)
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, fps := range [...][]Fingerprint{p.UserCertificate, p.UserSMIMECertificate} {
		b = binary.AppendUvarint(b, uint64(len(fps)))
		for _, f := range fps {
			b = append(b, f[:]...)
		}
	}
	return b, nil
}

// decodePublishedRecord reads a record in either layout: binary, or JSON
// as this package wrote it before. The strings of a binary record share
// one allocation (a pass decodes the record of every entry it takes on
// trust).
func decodePublishedRecord(v []byte) (Published, error) {
	var p Published
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &p)
		return p, err
	}
	r := recordReader{fieldReader: fieldReader{b: v}}
	if r.byte() != publishedRecordVersion {
		return Published{}, errPublishedRecord
	}
	// The strings (Recipient, At, User, Name, Kind) come first, one after
	// the other: measured, then copied at once.
	from := r.pos
	for range 5 {
		r.bytes()
	}
	if r.bad {
		return Published{}, errPublishedRecord
	}
	r.strs, r.strsAt, r.pos = string(v[from:r.pos]), from, from
	p.Recipient = r.str()
	if err := p.At.UnmarshalText(r.bytes()); err != nil {
		return Published{}, fmt.Errorf("%w: %v", errPublishedRecord, err)
	}
	p.User, p.Name, p.Kind = r.str(), r.str(), r.str()
	p.UserCertificate, p.UserSMIMECertificate = r.fingerprints(), r.fingerprints()
	if r.bad || r.pos != len(v) {
		return Published{}, errPublishedRecord
	}
	return p, nil
}

// recordRecipient is the Recipient of a record in either layout ("" when
// it cannot be read).
func recordRecipient(v []byte) string {
	if len(v) > 0 && v[0] == '{' {
		var r struct {
			Recipient string `json:"recipient"`
		}
		json.Unmarshal(v, &r)
		return r.Recipient
	}
	r := recordReader{fieldReader: fieldReader{b: v}}
	if r.byte() != publishedRecordVersion {
		return ""
	}
	s := r.str()
	if r.bad {
		return ""
	}
	return s
}

// recordReader reads a binary record b from pos; bad is set at the first
// thing it cannot read, after which every read returns nothing. strs,
// when set, is a copy of b from strsAt, which str slices rather than
// copying each string.
type recordReader struct {
	fieldReader
	strs   string
	strsAt int
}

// fieldReader reads the fields of a binary record (a Published record,
// a plan's or a report's row) from b, from pos; bad is set at the first
// one it cannot read, after which every read returns nothing.
type fieldReader struct {
	b   []byte
	pos int
	bad bool
}

func (r *fieldReader) byte() byte {
	if r.bad || r.pos >= len(r.b) {
		r.bad = true
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

// count reads a uvarint that counts items of at least size bytes each
// still to come.
func (r *fieldReader) count(size int) int {
	if r.bad {
		return 0
	}
	n, k := binary.Uvarint(r.b[r.pos:])
	if k <= 0 || n > uint64(len(r.b)-r.pos-k)/uint64(size) {
		r.bad = true
		return 0
	}
	r.pos += k
	return int(n)
}

func (r *recordReader) bytes() []byte {
	n := r.count(1)
	if r.bad {
		return nil
	}
	b := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b
}

// str reads a length-prefixed string: a slice of strs when it lies there,
// else a copy.
func (r *recordReader) str() string {
	b := r.bytes()
	if r.bad {
		return ""
	}
	if i := r.pos - len(b) - r.strsAt; r.strs != "" && i >= 0 && i+len(b) <= len(r.strs) {
		return r.strs[i : i+len(b)]
	}
	return string(b)
}

// fingerprints reads a count and that many fingerprints (nil for none, as
// JSON reads an omitted list).
func (r *fieldReader) fingerprints() []Fingerprint {
	n := r.count(len(Fingerprint{}))
	if r.bad || n == 0 {
		return nil
	}
	fps := make([]Fingerprint, n)
	for i := range fps {
		fps[i] = Fingerprint(r.b[r.pos+32*i:])
	}
	r.pos += 32 * n
	return fps
}
