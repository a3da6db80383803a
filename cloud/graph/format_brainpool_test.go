package graph_test

import (
	"bufio"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/graph"
)

// TestValuesBrainpool: a certificate crypto/x509 refuses only for its
// brainpoolP256r1 key still yields its values in every format (none
// needs the key), as testdata/gen-brainpool.sh computed them with openssl.
func TestValuesBrainpool(t *testing.T) {
	der, err := os.ReadFile(filepath.Join("testdata", "dora-brainpool.der"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificate(der); err == nil || !strings.Contains(err.Error(), "unsupported elliptic curve") {
		t.Fatalf("precondition: crypto/x509 says %v, want unsupported elliptic curve", err)
	}
	f, err := os.Open(filepath.Join("testdata", "values-brainpool.golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, rest, _ := strings.Cut(line, " ")
		format, want, _ := strings.Cut(rest, " ")
		n++
		t.Run(format, func(t *testing.T) {
			vals, errs := graph.Values([][]byte{der}, graph.Format(format))
			if len(errs) != 0 || len(vals) != 1 || vals[0] != want {
				t.Fatalf("values %q, errors %v; want %q", vals, errs, want)
			}
		})
	}
	if n != 4 {
		t.Fatalf("read %d golden lines, want 4", n)
	}
}
