package smimesync

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBERToDER(t *testing.T) {
	tests := []struct {
		name    string
		in, out string
	}{
		{"DER stays", "30 06 02 01 05 04 01 61", "30 06 02 01 05 04 01 61"},
		{"indefinite SEQUENCE", "30 80 02 01 05 00 00", "30 03 02 01 05"},
		{"nested indefinite", "30 80 31 80 02 01 01 00 00 a0 80 00 00 00 00", "30 07 31 03 02 01 01 a0 00"},
		{"long form for a short length", "04 81 03 61 62 63", "04 03 61 62 63"},
		{"length with a leading zero", "04 82 00 03 61 62 63", "04 03 61 62 63"},
		{"constructed OCTET STRING, indefinite", "24 80 04 02 61 62 04 01 63 00 00", "04 03 61 62 63"},
		{"constructed OCTET STRING, definite", "24 07 04 02 61 62 04 01 63", "04 03 61 62 63"},
		{"nested constructed OCTET STRING", "24 80 24 80 04 01 61 00 00 04 01 62 00 00", "04 02 61 62"},
		{"empty constructed OCTET STRING", "24 80 00 00", "04 00"},
		{"constructed OCTET STRING inside [0]", "a0 80 24 80 04 01 61 04 01 62 00 00 00 00", "a0 04 04 02 61 62"},
		{"constructed BIT STRING", "23 80 03 02 00 0a 03 02 04 f0 00 00", "03 03 04 0a f0"},
		{"constructed UTF8String", "2c 80 04 01 61 0c 01 62 00 00", "0c 02 61 62"},
		{"high tag number kept", "bf 81 00 80 02 01 01 00 00", "bf 81 00 03 02 01 01"},
		{"long definite length grows shorter", "30 84 00 00 00 03 02 01 07", "30 03 02 01 07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, want := unhex(t, tt.in), unhex(t, tt.out)
			got, changed, err := berToDER(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("berToDER(% x) = % x, want % x", in, got, want)
			}
			if changed != (tt.in != tt.out) {
				t.Errorf("changed = %v", changed)
			}
			again, changed2, err := berToDER(got)
			if err != nil || changed2 || !bytes.Equal(again, got) {
				t.Errorf("second pass = % x, %v, %v; want the same DER, unchanged", again, changed2, err)
			}
		})
	}
}

func TestBERToDERLongLength(t *testing.T) {
	content := bytes.Repeat([]byte{0x61}, 300)
	in := append([]byte{0x24, 0x80, 0x04, 0x82, 0x01, 0x2c}, content...)
	in = append(in, 0, 0)
	want := append([]byte{0x04, 0x82, 0x01, 0x2c}, content...)
	got, changed, err := berToDER(in)
	if err != nil || !changed || !bytes.Equal(got, want) {
		t.Fatalf("berToDER = % x…, %v, %v; want % x…", got[:8], changed, err, want[:8])
	}
}

func TestBERToDERErrors(t *testing.T) {
	deep := strings.Repeat("30 80 ", maxBERDepth+2) + "05 00" + strings.Repeat(" 00 00", maxBERDepth+2)
	tests := []struct {
		name   string
		in     string
		offset int
		msg    string
	}{
		{"empty", "", 0, "empty input"},
		{"identifier only", "30", 1, "length octet missing"},
		{"truncated content", "04 05 61 62", 1, "larger than the 2 bytes left"},
		{"truncated length octets", "04 82 01", 1, "length octets missing"},
		{"indefinite primitive", "04 80 61 00 00", 1, "indefinite length on a primitive"},
		{"missing end-of-contents", "30 80 02 01 05", 5, "end-of-contents missing"},
		{"child overruns its parent", "30 03 02 02 05 06", 3, "larger than the 1 bytes left"},
		{"reserved length", "04 ff 00", 1, "reserved length octet"},
		{"stray end-of-contents", "30 02 00 00", 2, "end-of-contents"},
		{"trailing data", "05 00 05 00", 2, "trailing data"},
		{"high tag with leading zero digit", "bf 80 01 00", 1, "leading zero"},
		{"low tag in the high form", "bf 1e 00", 0, "high tag number form"},
		{"tag number too long", "bf 81 81 81 81 01 00", 0, "longer than 4 octets"},
		{"truncated tag number", "bf 81", 2, "tag number incomplete"},
		{"too deep", deep, 2 * (maxBERDepth + 1), "nesting deeper"},
		{"SEQUENCE inside a constructed OCTET STRING", "24 80 30 00 00 00", 0, "segment with identifier 0x30"},
		{"BIT STRING segment with unused bits before the last", "23 80 03 02 04 f0 03 02 00 0a 00 00", 0, "unused bits"},
		{"BIT STRING segment without unused-bits octet", "23 80 03 00 00 00", 0, "unused-bits octet"},
		{"length larger than the input", "04 84 7f ff ff ff 00", 1, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := berToDER(unhex(t, tt.in))
			var be *berError
			if !errors.As(err, &be) {
				t.Fatalf("berToDER = % x, %v; want a *berError", out, err)
			}
			if be.Offset != tt.offset || !strings.Contains(be.Msg, tt.msg) {
				t.Errorf("error %q at offset %d, want %q at %d", be.Msg, be.Offset, tt.msg, tt.offset)
			}
		})
	}
}

// TestBERToDERKeepsDER feeds every DER file of the test data through the
// converter: it must hand back the very same slice.
func TestBERToDERKeepsDER(t *testing.T) {
	files, _ := filepath.Glob("testdata/rfc9216/cms-der/*.p7m")
	if len(files) != 10 {
		t.Fatalf("found %d CMS files, want 10", len(files))
	}
	for _, f := range files {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, changed, err := berToDER(in)
		if err != nil || changed || &out[0] != &in[0] || len(out) != len(in) {
			t.Errorf("%s: changed=%v err=%v; want the input back", f, changed, err)
		}
	}
}

// TestBERToDERMatchesOpenSSL converts `openssl cms -sign -stream` output
// (indefinite lengths, the content in constructed OCTET STRING segments) and
// compares with openssl's own DER re-encoding of the same object.
func TestBERToDERMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("SMIMESYNC_REQUIRE_SERVERS") == "1" {
			t.Fatalf("openssl is required (SMIMESYNC_REQUIRE_SERVERS=1) but not installed: %v", err)
		}
		t.Skipf("openssl not installed (apt-get install openssl); skipping: %v", err)
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// A message large enough for several streamed segments.
	msg := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	if err := os.WriteFile(filepath.Join(dir, "msg.bin"), msg, 0o600); err != nil {
		t.Fatal(err)
	}
	run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=ber test/emailAddress=ber@example.org",
		"-days", "1", "-keyout", "key.pem", "-out", "cert.pem")
	run("cms", "-sign", "-stream", "-binary", "-nodetach", "-in", "msg.bin", "-signer", "cert.pem", "-inkey", "key.pem", "-outform", "DER", "-out", "stream.ber")
	run("cms", "-cmsout", "-inform", "DER", "-in", "stream.ber", "-outform", "DER", "-out", "openssl.der")
	ber, err := os.ReadFile(filepath.Join(dir, "stream.ber"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "openssl.der"))
	if err != nil {
		t.Fatal(err)
	}
	if ber[1] != 0x80 || bytes.Count(ber, []byte{0x24, 0x80}) == 0 {
		t.Fatalf("openssl's stream output has no indefinite lengths / constructed OCTET STRING")
	}
	got, changed, err := berToDER(ber)
	if err != nil {
		t.Fatal(err)
	}
	if !changed || !bytes.Equal(got, want) {
		t.Errorf("berToDER differs from openssl's DER (%d vs %d bytes)", len(got), len(want))
	}
	var rv asn1.RawValue
	if rest, err := asn1.Unmarshal(got, &rv); err != nil || len(rest) != 0 {
		t.Errorf("encoding/asn1 refuses the output: %v", err)
	}
}
