// Package ber makes BER encodings for the example programs and benchmarks:
// the indefinite-length form NSS and Outlook write userSMIMECertificate
// blobs in, which Go's encoding/asn1 refuses and smimesync normalises.
package ber

import (
	"encoding/asn1"
	"errors"
)

// Indefinite re-encodes the constructed values of a DER encoding, down to
// depth levels, with indefinite lengths (0x80 … 00 00). Only low tag
// numbers are expected, as in CMS's outer layers.
func Indefinite(der []byte, depth int) ([]byte, error) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, errors.New("ber: trailing data after the DER value")
	}
	return indefinite(raw, depth)
}

func indefinite(v asn1.RawValue, depth int) ([]byte, error) {
	if !v.IsCompound || depth == 0 {
		return v.FullBytes, nil
	}
	// The tag is the first byte; 0x80 replaces the definite length.
	out := []byte{v.FullBytes[0], 0x80}
	body := v.Bytes
	for len(body) > 0 {
		var child asn1.RawValue
		rest, err := asn1.Unmarshal(body, &child)
		if err != nil {
			return nil, err
		}
		enc, err := indefinite(child, depth-1)
		if err != nil {
			return nil, err
		}
		out = append(out, enc...)
		body = rest
	}
	return append(out, 0, 0), nil
}
