package smimesync

import (
	"errors"
	"fmt"
)

// BER to DER normalisation.
//
// Real userSMIMECertificate values written by NSS, Outlook or
// `openssl cms -sign -stream` are BER: indefinite lengths (`30 80 … 00 00`),
// lengths in a longer form than needed, and OCTET STRINGs split into
// constructed segments. Go's encoding/asn1 accepts only DER, so the value is
// rewritten first. The converter works on tag-length-value structure only; it
// knows no schema, so it does not reorder SET members (a SET in a BER value
// is kept in the order it was written).

// maxBERDepth bounds the nesting of constructed elements. A CMS SignedData
// holding certificates nests about 15 levels deep; 64 leaves room for odd
// encoders while keeping recursion shallow.
const maxBERDepth = 64

// berError is a BER value the converter cannot read. Offset is the byte
// position in the input where the problem was found.
type berError struct {
	Offset int
	Msg    string
}

func (e *berError) Error() string {
	return fmt.Sprintf("BER at offset %d: %s", e.Offset, e.Msg)
}

// errNotDER stops the first, read-only pass as soon as the input turns out
// not to be DER; the second pass then builds the DER form.
var errNotDER = errors.New("not DER")

// berNode is one element of the value in the building pass.
type berNode struct {
	// tag holds the identifier octets, as read (or rewritten to the
	// primitive form for a flattened string).
	tag         []byte
	constructed bool
	// content is a primitive element's content octets.
	content  []byte
	children []berNode
	// length is the DER length of the content octets.
	length int
}

// size is the number of bytes the node takes in DER.
func (n *berNode) size() int {
	return len(n.tag) + derLengthSize(n.length) + n.length
}

func (n *berNode) appendDER(dst []byte) []byte {
	dst = append(dst, n.tag...)
	dst = appendDERLength(dst, n.length)
	if !n.constructed {
		return append(dst, n.content...)
	}
	for i := range n.children {
		dst = n.children[i].appendDER(dst)
	}
	return dst
}

// derLengthSize is the number of length octets DER uses for length.
func derLengthSize(length int) int {
	if length < 0x80 {
		return 1
	}
	n := 1
	for l := length; l > 0; l >>= 8 {
		n++
	}
	return n
}

func appendDERLength(dst []byte, length int) []byte {
	if length < 0x80 {
		return append(dst, byte(length))
	}
	n := derLengthSize(length) - 1
	dst = append(dst, 0x80|byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(length>>(8*i)))
	}
	return dst
}

// berToDER returns the DER form of the single BER element that makes up in.
// When in is already DER it returns in itself (not a copy) and changed is
// false. Errors are *berError values naming the offset. Lengths are checked
// against the input before anything is allocated, and nesting is bounded
// by maxBERDepth, so the work is linear in len(in).
func berToDER(in []byte) (der []byte, changed bool, err error) {
	if len(in) == 0 {
		return nil, false, &berError{Offset: 0, Msg: "empty input"}
	}
	check := berReader{in: in}
	_, end, err := check.element(0, len(in), 0)
	switch {
	case err == nil:
		if end != len(in) {
			return nil, false, &berError{Offset: end, Msg: fmt.Sprintf("%d bytes of trailing data after the element", len(in)-end)}
		}
		return in, false, nil
	case !errors.Is(err, errNotDER):
		return nil, false, err
	}
	build := berReader{in: in, build: true}
	root, end, err := build.element(0, len(in), 0)
	if err != nil {
		return nil, false, err
	}
	if end != len(in) {
		return nil, false, &berError{Offset: end, Msg: fmt.Sprintf("%d bytes of trailing data after the element", len(in)-end)}
	}
	out := make([]byte, 0, root.size())
	return root.appendDER(out), true, nil
}

// berReader walks a BER value. With build false it only checks that the
// value is DER (returning errNotDER at the first difference); with build
// true it returns the tree the DER form is written from.
type berReader struct {
	in    []byte
	build bool
}

// notDER reports a BER-only construct: in the checking pass it stops the
// walk, in the building pass it is no error.
func (r *berReader) notDER() error {
	if r.build {
		return nil
	}
	return errNotDER
}

// element reads the element starting at off, which must end by limit. It
// returns the node (empty unless building) and the offset after it.
func (r *berReader) element(off, limit, depth int) (berNode, int, error) {
	var n berNode
	if depth > maxBERDepth {
		return n, 0, &berError{Offset: off, Msg: fmt.Sprintf("nesting deeper than %d levels", maxBERDepth)}
	}
	start := off
	if off >= limit {
		return n, 0, &berError{Offset: off, Msg: "truncated: identifier octet missing"}
	}
	b0 := r.in[off]
	off++
	n.constructed = b0&0x20 != 0
	tagNumber := int(b0 & 0x1f)
	if tagNumber == 0x1f {
		// High tag number form: base-128 digits, most significant
		// first, bit 8 set on all but the last.
		tagNumber = 0
		for i := 0; ; i++ {
			if off >= limit {
				return n, 0, &berError{Offset: off, Msg: "truncated: tag number incomplete"}
			}
			c := r.in[off]
			off++
			if i == 0 && c == 0x80 {
				return n, 0, &berError{Offset: off - 1, Msg: "tag number has a leading zero digit"}
			}
			if i == 4 {
				return n, 0, &berError{Offset: start, Msg: "tag number longer than 4 octets"}
			}
			tagNumber = tagNumber<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
		if tagNumber < 0x1f {
			return n, 0, &berError{Offset: start, Msg: fmt.Sprintf("tag number %d in the high tag number form", tagNumber)}
		}
	}
	universal := b0&0xc0 == 0
	if universal && tagNumber == 0 {
		// Tag 0 is reserved for end-of-contents, which only closes an
		// indefinite-length element (handled by the caller).
		return n, 0, &berError{Offset: start, Msg: "unexpected end-of-contents or reserved tag 0"}
	}
	if r.build {
		n.tag = r.in[start:off]
	}

	if off >= limit {
		return n, 0, &berError{Offset: off, Msg: "truncated: length octet missing"}
	}
	lenStart := off
	l := r.in[off]
	off++
	indefinite := false
	length := 0
	switch {
	case l < 0x80:
		length = int(l)
	case l == 0x80:
		if !n.constructed {
			return n, 0, &berError{Offset: lenStart, Msg: "indefinite length on a primitive element"}
		}
		indefinite = true
		if err := r.notDER(); err != nil {
			return n, 0, err
		}
	case l == 0xff:
		return n, 0, &berError{Offset: lenStart, Msg: "reserved length octet 0xff"}
	default:
		count := int(l & 0x7f)
		if count > limit-off {
			return n, 0, &berError{Offset: lenStart, Msg: "truncated: length octets missing"}
		}
		for i := 0; i < count; i++ {
			// Any length above limit is refused below, so stop
			// accumulating before an int could overflow.
			if length > limit {
				return n, 0, &berError{Offset: lenStart, Msg: "length larger than the input"}
			}
			length = length<<8 | int(r.in[off+i])
		}
		off += count
		if length < 0x80 || r.in[lenStart+1] == 0 {
			// Longer form than needed: valid BER, not DER.
			if err := r.notDER(); err != nil {
				return n, 0, err
			}
		}
	}

	if indefinite {
		for {
			if off+1 < limit && r.in[off] == 0 && r.in[off+1] == 0 {
				off += 2
				break
			}
			if off >= limit {
				return n, 0, &berError{Offset: off, Msg: fmt.Sprintf("truncated: end-of-contents missing for the element at offset %d", start)}
			}
			child, next, err := r.element(off, limit, depth+1)
			if err != nil {
				return n, 0, err
			}
			if r.build {
				n.children = append(n.children, child)
			}
			off = next
		}
	} else {
		if length > limit-off {
			return n, 0, &berError{Offset: lenStart, Msg: fmt.Sprintf("length %d larger than the %d bytes left", length, limit-off)}
		}
		end := off + length
		if !n.constructed {
			if r.build {
				n.content = r.in[off:end]
				n.length = length
			}
			return n, end, nil
		}
		for off < end {
			child, next, err := r.element(off, end, depth+1)
			if err != nil {
				return n, 0, err
			}
			if r.build {
				n.children = append(n.children, child)
			}
			off = next
		}
	}

	if universal && isStringType(tagNumber) {
		// A constructed string: DER wants one primitive element.
		if err := r.notDER(); err != nil {
			return n, 0, err
		}
		if err := n.flatten(tagNumber, start); err != nil {
			return n, 0, err
		}
		return n, off, nil
	}
	if r.build {
		for i := range n.children {
			n.length += n.children[i].size()
		}
	}
	return n, off, nil
}

// isStringType reports whether a universal tag is a string type that BER
// may split into constructed segments: BIT STRING, OCTET STRING and the
// character string types.
func isStringType(tag int) bool {
	switch tag {
	case 3, 4, 12, 18, 19, 20, 21, 22, 25, 26, 27, 28, 30:
		return true
	}
	return false
}

// flatten turns a constructed string node (whose children are already
// flattened) into the primitive element DER requires. Segments of a BIT
// STRING are BIT STRINGs whose leading unused-bits octet must be zero except
// in the last; segments of other strings are OCTET STRINGs (X.690 8.23.6) or,
// leniently, elements of the string's own type.
func (n *berNode) flatten(tagNumber, offset int) error {
	total := 0
	for i := range n.children {
		c := &n.children[i]
		ct := c.tag[0] & 0x1f
		if len(c.tag) != 1 || c.tag[0]&0xc0 != 0 || (ct != 4 && int(ct) != tagNumber) || (tagNumber == 3 && ct != 3) {
			return &berError{Offset: offset, Msg: fmt.Sprintf("constructed string (tag %d) holds a segment with identifier 0x%02x", tagNumber, c.tag[0])}
		}
		if tagNumber == 3 {
			if len(c.content) == 0 {
				return &berError{Offset: offset, Msg: "BIT STRING segment without its unused-bits octet"}
			}
			unused := c.content[0]
			if unused > 7 || (unused != 0 && (i != len(n.children)-1 || len(c.content) == 1)) {
				return &berError{Offset: offset, Msg: fmt.Sprintf("BIT STRING segment %d has %d unused bits", i, unused)}
			}
			total += len(c.content) - 1
			continue
		}
		total += len(c.content)
	}
	var content []byte
	if tagNumber == 3 {
		content = make([]byte, 1, total+1)
		if len(n.children) > 0 {
			content[0] = n.children[len(n.children)-1].content[0]
		}
		for i := range n.children {
			content = append(content, n.children[i].content[1:]...)
		}
	} else {
		content = make([]byte, 0, total)
		for i := range n.children {
			content = append(content, n.children[i].content...)
		}
	}
	n.tag = []byte{byte(tagNumber)}
	n.constructed = false
	n.children = nil
	n.content = content
	n.length = len(content)
	return nil
}
