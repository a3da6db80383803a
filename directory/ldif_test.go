package directory_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/smimesync/go-smimesync/directory"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads every entry ReadLDIF yields from b.
func readAll(b []byte) ([]*directory.Entry, error) {
	var got []*directory.Entry
	err := directory.ReadLDIF(context.Background(), bytes.NewReader(b), func(e *directory.Entry) error {
		got = append(got, e)
		return nil
	})
	return got, err
}

func fixtureEntries(t *testing.T) map[string][]*directory.Entry {
	alice := readTestdata(t, "alice.der")
	bob := readTestdata(t, "bob.der")
	smime := readTestdata(t, "alice-smime.p7b")
	return map[string][]*directory.Entry{
		"ad-ldifde.ldif": {
			{
				// objectGUID E0 04 25 3F 89 4F D3 11 9A 0C 03 05 E8 2C 33 01:
				// the first three fields are little-endian.
				ID:                "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
				DN:                "CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=com",
				UserPrincipalName: "alice@corp.example.com",
				Mail:              "Alice@Example.com",
				ProxyAddresses: []string{
					"SMTP:Alice@Example.com",
					"smtp:alice.example@corp.example.com",
					"X500:/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=alice",
				},
				UserCertificate:      [][]byte{alice},
				UserSMIMECertificate: [][]byte{smime},
			},
			{
				ID:                "04030201-0605-0807-090a-0b0c0d0e0f10",
				DN:                "CN=Bob Example,OU=Staff,DC=corp,DC=example,DC=com",
				UserPrincipalName: "bob@corp.example.com",
				Mail:              "bob@example.org",
				UserCertificate:   [][]byte{bob, alice},
			},
			{
				ID:      "6b1c4e2a-5d3f-4a7b-9c8d-0e1f2a3b4c5d",
				DN:      "CN=Carol Deleted\nDEL:6b1c4e2a-5d3f-4a7b-9c8d-0e1f2a3b4c5d,CN=Deleted Objects,DC=corp,DC=example,DC=com",
				Deleted: true,
			},
		},
		"openldap-slapcat-crlf.ldif": {
			{
				ID:              "8a3b6c1e-2f4d-4e5a-9b6c-7d8e9f0a1b2c",
				DN:              "cn=Zoë Ärger,ou=people,dc=example,dc=org",
				Mail:            "zoë@example.org",
				UserCertificate: [][]byte{bob},
			},
			{
				ID:                   "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
				DN:                   "uid=dave,ou=people,dc=example,dc=org",
				Mail:                 "dave@example.org",
				UserSMIMECertificate: [][]byte{smime},
			},
		},
		"plain.ldif": {
			{
				ID:   "cn=Eve Plain,dc=example,dc=net",
				DN:   "cn=Eve Plain,dc=example,dc=net",
				Mail: "eve@example.net",
				ProxyAddresses: []string{
					"smtp:eve.plain@example.net",
					"SMTP:EVE@EXAMPLE.NET",
					"smtp:eve.alias@example.net",
				},
				UserCertificate: [][]byte{[]byte("not base64, kept as its bytes")},
			},
			{
				ID: "cn=Frank Empty,dc=example,dc=net",
				DN: "cn=Frank Empty,dc=example,dc=net",
			},
		},
	}
}

func TestReadLDIF(t *testing.T) {
	for file, want := range fixtureEntries(t) {
		t.Run(file, func(t *testing.T) {
			got, err := readAll(readTestdata(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entries differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLDIFFile(t *testing.T) {
	for file, want := range fixtureEntries(t) {
		t.Run(file, func(t *testing.T) {
			src := directory.LDIFFile{Path: filepath.Join("testdata", file)}
			var got []*directory.Entry
			// A cookie is ignored: LDIF has no deltas.
			res, err := src.Read(context.Background(), directory.Pass{Cookie: []byte("old")}, func(e *directory.Entry) error {
				got = append(got, e)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(directory.Result{Cookie: nil, Full: true}, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entries differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLDIFFileErrors(t *testing.T) {
	ctx := context.Background()
	nop := func(*directory.Entry) error { return nil }
	if _, err := (directory.LDIFFile{}).Read(ctx, directory.Pass{}, nop); err == nil {
		t.Error("LDIFFile without a Path: no error")
	}
	_, err := directory.LDIFFile{Path: filepath.Join("testdata", "missing.ldif")}.Read(ctx, directory.Pass{}, nop)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want an error wrapping fs.ErrNotExist", err)
	}
}

func TestReadLDIFErrors(t *testing.T) {
	tests := []struct {
		file   string
		line   int
		dn     string
		is     error
		before int // entries yielded before the error
	}{
		{"err-changetype.ldif", 5, "cn=b,dc=example", directory.ErrLDIFUnsupported, 1},
		{"err-url.ldif", 3, "cn=a,dc=example", directory.ErrLDIFUnsupported, 0},
		{"err-control.ldif", 4, "cn=a,dc=example", directory.ErrLDIFUnsupported, 0},
		{"err-nodn.ldif", 3, "", directory.ErrLDIFSyntax, 0},
		{"err-base64.ldif", 2, "cn=a,dc=example", directory.ErrLDIFSyntax, 0},
		{"err-fold-start.ldif", 1, "", directory.ErrLDIFSyntax, 0},
		{"err-fold-blank.ldif", 3, "", directory.ErrLDIFSyntax, 1},
		{"err-version.ldif", 1, "", directory.ErrLDIFUnsupported, 0},
		{"err-nocolon.ldif", 2, "cn=a,dc=example", directory.ErrLDIFSyntax, 0},
		{"err-objectguid.ldif", 2, "cn=a,dc=example", directory.ErrLDIFSyntax, 0},
		{"err-dn-twice.ldif", 3, "cn=a,dc=example", directory.ErrLDIFSyntax, 0},
		{"err-noname.ldif", 2, "cn=a,dc=example", directory.ErrLDIFSyntax, 0},
		{"err-dn-base64.ldif", 1, "", directory.ErrLDIFSyntax, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			n := 0
			_, err := directory.LDIFFile{Path: path}.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error {
				n++
				return nil
			})
			var le *directory.LDIFError
			if !errors.As(err, &le) {
				t.Fatalf("got %v (%T), want *LDIFError", err, err)
			}
			if le.Line != tt.line || le.Path != path || le.DN != tt.dn {
				t.Errorf("got line %d, path %q, dn %q; want line %d, path %q, dn %q (%v)", le.Line, le.Path, le.DN, tt.line, path, tt.dn, err)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("got %v, want it to wrap %v", err, tt.is)
			}
			if want := fmt.Sprintf("%s:%d", path, tt.line); !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not name %s", err, want)
			}
			if n != tt.before {
				t.Errorf("%d entries yielded before the error, want %d", n, tt.before)
			}
		})
	}
}

// repeatReader yields head, then body repeated n times, then tail, without
// ever holding more than one copy.
type repeatReader struct {
	head, body, tail []byte
	n                int
	cur              []byte
	stage            int
	produced         int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		switch {
		case r.stage == 0:
			r.cur, r.stage = r.head, 1
		case r.stage == 1 && r.n > 0:
			r.cur, r.n = r.body, r.n-1
		case r.stage == 1:
			r.cur, r.stage = r.tail, 2
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.produced += int64(n)
	return n, nil
}

func TestReadLDIFTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 1<<20)
	tests := []struct {
		name string
		r    io.Reader
		line int
	}{
		{"one long line", &repeatReader{head: []byte("dn: cn=a\nmail: "), body: big, n: 17, tail: []byte("\n")}, 2},
		{"one long folded line", &repeatReader{head: []byte("dn: cn=a\nmail: x\n"), body: append(append([]byte{' '}, big...), '\n'), n: 17}, 2},
		{"a comment is skipped, however long", &repeatReader{head: []byte("# "), body: big, n: 17, tail: []byte("\nmail: x\n")}, 2},
		{"one large entry", &repeatReader{head: []byte("dn: cn=a\n"), body: append(append([]byte("userCertificate: "), bytes.Repeat([]byte("b"), 8<<20)...), '\n'), n: 9}, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := directory.ReadLDIF(context.Background(), tt.r, func(*directory.Entry) error { return nil })
			var le *directory.LDIFError
			if !errors.As(err, &le) || le.Line != tt.line {
				t.Fatalf("got %v, want an *LDIFError at line %d", err, tt.line)
			}
			if tt.name == "a comment is skipped, however long" {
				if !errors.Is(err, directory.ErrLDIFSyntax) {
					t.Errorf("got %v, want ErrLDIFSyntax for the record without dn", err)
				}
				return
			}
			if !errors.Is(err, directory.ErrLDIFTooLarge) {
				t.Errorf("got %v, want ErrLDIFTooLarge", err)
			}
		})
	}
}

func TestReadLDIFLongestLine(t *testing.T) {
	// A value exactly at the bound is read.
	head := []byte("dn: cn=a\nuserCertificate: ")
	v := bytes.Repeat([]byte("c"), directory.MaxLDIFLine-len("userCertificate: "))
	in := io.MultiReader(bytes.NewReader(head), bytes.NewReader(v), strings.NewReader("\r\n"))
	var got *directory.Entry
	if err := directory.ReadLDIF(context.Background(), in, func(e *directory.Entry) error { got = e; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got.UserCertificate) != 1 || !bytes.Equal(got.UserCertificate[0], v) {
		t.Errorf("value at the line bound not read back whole")
	}
}

func TestReadLDIFStopsOnYieldError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := directory.ReadLDIF(context.Background(), bytes.NewReader(readTestdata(t, "ad-ldifde.ldif")), func(*directory.Entry) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("got %v after %d entries, want the yield error itself after 1", err, n)
	}
}

func TestReadLDIFContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err := directory.ReadLDIF(ctx, bytes.NewReader(readTestdata(t, "ad-ldifde.ldif")), func(*directory.Entry) error {
		n++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("got %v after %d entries, want context.Canceled after 1", err, n)
	}
}

// TestReadLDIFStreams reads 200,000 records generated on the fly and checks
// that the first was handed over long before the input ended: ReadLDIF does
// not buffer the input.
func TestReadLDIFStreams(t *testing.T) {
	const records = 200_000
	r := &repeatReader{
		head: []byte("version: 1\n"),
		body: []byte("\ndn: cn=user,ou=people,dc=example,dc=org\nobjectGUID:: AQIDBAUGBwgJCgsMDQ4PEA==\n" +
			"mail: user@example.org\nproxyAddresses: SMTP:user@example.org\n" +
			"userCertificate:: MIIBxDCCAWqgAwIBAgIUcDYvyqiot/a48FO3lDFNohrjoqwwCgYIK\n oZIzj0EAwIwFjEUMBIGA1UEAwwLQm9iIEV4YW1wbGUw\n"),
		n: records,
	}
	total := int64(len(r.head) + records*len(r.body))
	var firstAt int64 = -1
	n := 0
	err := directory.ReadLDIF(context.Background(), r, func(e *directory.Entry) error {
		if firstAt < 0 {
			firstAt = r.produced
		}
		if e.Mail != "user@example.org" || len(e.UserCertificate) != 1 {
			return fmt.Errorf("entry %d read wrong: %+v", n, e)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != records {
		t.Errorf("read %d records, want %d", n, records)
	}
	if r.produced != total {
		t.Errorf("reader produced %d bytes, want %d", r.produced, total)
	}
	// The reader buffers 64 KiB; the first record must have been yielded
	// after at most that much (and a little) of the input.
	if firstAt > 128<<10 {
		t.Errorf("first record yielded after %d of %d bytes: the input is being buffered", firstAt, total)
	}
}

func BenchmarkReadLDIF(b *testing.B) {
	alice := readTestdata(b, "alice.der")
	var rec bytes.Buffer
	e := &directory.Entry{
		ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=com",
		UserPrincipalName: "alice@corp.example.com", Mail: "alice@example.com",
		ProxyAddresses:  []string{"SMTP:alice@example.com", "smtp:alias@example.com"},
		UserCertificate: [][]byte{alice},
	}
	if err := directory.WriteLDIF(&rec, e); err != nil {
		b.Fatal(err)
	}
	body := bytes.TrimPrefix(rec.Bytes(), []byte("version: 1\n"))
	const perOp = 1000
	b.SetBytes(int64(len(body) * perOp))
	b.ReportAllocs()
	records := 0
	for b.Loop() {
		r := &repeatReader{body: body, n: perOp}
		if err := directory.ReadLDIF(context.Background(), r, func(*directory.Entry) error { records++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// roundTrip writes entries and reads them back.
func roundTrip(t testing.TB, entries ...*directory.Entry) []*directory.Entry {
	t.Helper()
	var buf bytes.Buffer
	if err := directory.WriteLDIF(&buf, entries...); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(buf.Bytes())
	if err != nil {
		t.Fatalf("reading back what WriteLDIF wrote: %v\n%s", err, buf.Bytes())
	}
	return got
}

func TestWriteLDIFRoundTripFixtures(t *testing.T) {
	for file, want := range fixtureEntries(t) {
		t.Run(file, func(t *testing.T) {
			if diff := cmp.Diff(want, roundTrip(t, want...)); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteLDIFRoundTrip(t *testing.T) {
	long := strings.Repeat("0123456789", 30)
	tests := []struct {
		name string
		e    directory.Entry
	}{
		{"GUID ID", directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "cn=a"}},
		{"GUID in braces stays as written", directory.Entry{ID: "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", DN: "cn=a"}},
		{"upper-case GUID stays as written", directory.Entry{ID: "3F2504E0-4F89-11D3-9A0C-0305E82C3301", DN: "cn=a"}},
		{"other ID", directory.Entry{ID: "some-opaque-id", DN: "cn=a"}},
		{"ID is the DN", directory.Entry{ID: "cn=a", DN: "cn=a"}},
		{"empty DN", directory.Entry{}},
		{"leading space", directory.Entry{ID: "cn=a", DN: "cn=a", Mail: " a@example.com"}},
		{"trailing space", directory.Entry{ID: "cn=a", DN: "cn=a ", Mail: "a@example.com "}},
		{"leading colon and <", directory.Entry{ID: ":x", DN: "<cn=a", Mail: ":a"}},
		{"UTF-8", directory.Entry{ID: "cn=José", DN: "cn=José", Mail: "josé@example.com", UserPrincipalName: "josé@corp"}},
		{"control bytes", directory.Entry{ID: "a\x00b", DN: "cn=a\r\nb", ProxyAddresses: []string{"smtp:a\nb", "\x00"}}},
		{"hash and colons", directory.Entry{ID: "#1", DN: "#cn=a", Mail: "a:b: c"}},
		{"long values fold", directory.Entry{ID: long, DN: "cn=" + long, Mail: long, ProxyAddresses: []string{long, long}}},
		{"empty values", directory.Entry{ID: "x", DN: "cn=a", ProxyAddresses: []string{""}, UserCertificate: [][]byte{{}}, UserSMIMECertificate: [][]byte{{}, {0x30}}}},
		{"binary", directory.Entry{ID: "x", DN: "cn=a", UserCertificate: [][]byte{{0x30, 0x82, 0, 0xff, '\n', ' '}}, UserSMIMECertificate: [][]byte{[]byte(long)}}},
		{"deleted", directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=x\nDEL:3f2504e0", Deleted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := roundTrip(t, &tt.e)
			if diff := cmp.Diff([]*directory.Entry{&tt.e}, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteLDIFEmptyIDReadsBackAsDN(t *testing.T) {
	got := roundTrip(t, &directory.Entry{DN: "cn=a"})
	if len(got) != 1 || got[0].ID != "cn=a" {
		t.Errorf("got %+v, want one entry with ID cn=a", got)
	}
}

func TestWriteLDIFNil(t *testing.T) {
	if err := directory.WriteLDIF(io.Discard, &directory.Entry{}, nil); err == nil {
		t.Error("WriteLDIF with a nil entry: no error")
	}
}

// TestWriteLDIFGolden pins the output format: go test -run Golden -update
// rewrites testdata/written.golden.ldif.
func TestWriteLDIFGolden(t *testing.T) {
	entries := fixtureEntries(t)
	var buf bytes.Buffer
	all := append(append(append([]*directory.Entry{}, entries["ad-ldifde.ldif"]...), entries["openldap-slapcat-crlf.ldif"]...), entries["plain.ldif"]...)
	if err := directory.WriteLDIF(&buf, all...); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "written.golden.ldif")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("WriteLDIF output differs from %s (-want +got):\n%s", golden, diff)
	}
	for i, line := range strings.Split(buf.String(), "\n") {
		if len(line) > 76 {
			t.Errorf("line %d is %d columns, want at most 76", i+1, len(line))
		}
	}
}
