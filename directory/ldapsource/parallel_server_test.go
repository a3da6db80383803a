package ldapsource_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// TestParallelFullReadSamba: a full read of Samba through several
// connections (ranges of uSNCreated) returns exactly the entries and
// values of a read through one paged search, over LDAPS and StartTLS.
func TestParallelFullReadSamba(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	users := makeUsers(t, "par", 40)
	srv.AddUsers(t, ou, users)
	read := func(url string, conns int) (map[string]*directory.Entry, string) {
		cfg := adminConfig(srv, ou)
		cfg.URL, cfg.ReadConnections = url, conns
		s, logs := newSource(t, cfg)
		got, res := readAll(t, s, nil)
		if !res.Full {
			t.Fatalf("read_connections %d: not a full read", conns)
		}
		return got, logs.String()
	}
	one, _ := read(srv.URL, 1)
	if len(one) != len(users) {
		t.Fatalf("one connection: %d entries, want %d", len(one), len(users))
	}
	for _, url := range []string{srv.URL, srv.LDAPSURL} {
		for _, conns := range []int{2, 5} {
			got, logs := read(url, conns)
			if diff := cmp.Diff(one, got); diff != "" {
				t.Errorf("%s, read_connections %d: the entries differ from one connection's (-one +got):\n%s", url, conns, diff)
			}
			if strings.Contains(logs, "could not be used") {
				t.Errorf("%s, read_connections %d: a further connection was not used:\n%s", url, conns, logs)
			}
		}
	}
}
