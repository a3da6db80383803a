package directory

import (
	"encoding/hex"
	"fmt"
)

// FormatGUID formats a 16-byte Active Directory objectGUID value as the GUID
// string Windows tools show ("3f2504e0-4f89-11d3-9a0c-0305e82c3301"): the
// first three fields are stored little-endian, the last two as is. The
// result is lower-case.
func FormatGUID(b []byte) (string, error) {
	if len(b) != 16 {
		return "", fmt.Errorf("directory: objectGUID is %d bytes, want 16", len(b))
	}
	var s [16]byte
	s[0], s[1], s[2], s[3] = b[3], b[2], b[1], b[0]
	s[4], s[5] = b[5], b[4]
	s[6], s[7] = b[7], b[6]
	copy(s[8:], b[8:])
	h := hex.EncodeToString(s[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// ParseGUID is the inverse of [FormatGUID]: it returns the 16 bytes AD
// stores for a GUID string (with or without braces).
func ParseGUID(s string) ([]byte, error) {
	in := s
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, fmt.Errorf("directory: %q is not a GUID", in)
	}
	h, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil {
		return nil, fmt.Errorf("directory: %q is not a GUID: %w", in, err)
	}
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = h[3], h[2], h[1], h[0]
	b[4], b[5] = h[5], h[4]
	b[6], b[7] = h[7], h[6]
	copy(b[8:], h[8:])
	return b, nil
}
