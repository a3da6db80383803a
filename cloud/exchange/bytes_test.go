package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestEncodeByteArrays(t *testing.T) {
	tests := []struct {
		in   [][]byte
		want string
	}{
		{nil, `null`},
		{[][]byte{}, `null`},
		{[][]byte{{}}, `[{"Data":[]}]`},
		{[][]byte{{0x30, 0x82, 0x00, 0xff}, {1}}, `[{"Data":[48,130,0,255]},{"Data":[1]}]`},
	}
	for _, tt := range tests {
		got := encodeByteArrays(tt.in)
		if string(got) != tt.want {
			t.Errorf("encode(%v) = %s, want %s", tt.in, got, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("encode(%v) is not JSON", tt.in)
		}
	}
}

func TestDecodeByteArrays(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]byte
		err  error // errPlaceholder, or errAny for any other error
	}{
		{"absent", ``, nil, nil},
		{"null", `null`, nil, nil},
		{"empty", `[]`, [][]byte{}, nil},
		{"placeholder", `["System.Byte[]"]`, nil, errPlaceholder},
		{"placeholder after a good one", `["MAA=","System.Byte[]"]`, nil, errPlaceholder},
		{"base64", `["MIIB/w=="]`, [][]byte{{0x30, 0x82, 0x01, 0xff}}, nil},
		{"Data objects", `[{"Data":[48,130,1,255]}]`, [][]byte{{0x30, 0x82, 0x01, 0xff}}, nil},
		{"integer lists", `[[48,0]]`, [][]byte{{0x30, 0}}, nil},
		{"byte out of range", `[{"Data":[256]}]`, nil, errAny},
		{"negative byte", `[[-1]]`, nil, errAny},
		{"not base64", `["not base64!"]`, nil, errAny},
		{"not a list", `{"Data":[1]}`, nil, errAny},
		{"number item", `[7]`, nil, errAny},
		{"object without Data", `[{"Bytes":[1]}]`, nil, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeByteArrays(json.RawMessage(tt.in))
			switch {
			case tt.err == nil && err != nil:
				t.Fatalf("error %v", err)
			case tt.err == errPlaceholder && !errors.Is(err, errPlaceholder):
				t.Fatalf("error %v, want errPlaceholder", err)
			case tt.err == errAny && (err == nil || errors.Is(err, errPlaceholder)):
				t.Fatalf("error %v, want a decoding error", err)
			}
			if tt.err == nil && !slices.EqualFunc(got, tt.want, bytes.Equal) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func FuzzDecodeByteArrays(f *testing.F) {
	for _, s := range []string{`null`, `["System.Byte[]"]`, `[{"Data":[1,2]}]`, `["AAE="]`, `[[1]]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals, err := decodeByteArrays(json.RawMessage(s))
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same values.
		again, err := decodeByteArrays(encodeByteArrays(vals))
		if err != nil || !slices.EqualFunc(again, vals, bytes.Equal) && len(vals) > 0 {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}
