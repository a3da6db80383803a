package ldapsource_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// benchUsers is the directory size of the benchmarks: 10,000, or
// $SMIMESYNC_BENCH_LDAP_USERS (a multiple of 1,000), to show that memory
// does not grow with it.
var benchUsers = func() int {
	if n, err := strconv.Atoi(os.Getenv("SMIMESYNC_BENCH_LDAP_USERS")); err == nil && n > 0 && n%1000 == 0 {
		return n
	}
	return 10000
}()

// BenchEnv gates the benchmarks: they seed 10,000 users (about a minute on
// Samba, once per provisioned domain: the OU is kept) and run ldapsearch.
const benchEnv = "SMIMESYNC_BENCH_LDAP"

// benchOU returns an OU under srv holding benchUsers users with two
// certificates each. On Samba it is kept between runs (OU=bench10000) and
// reseeded only when incomplete; on slapd it is made for this run.
func benchOU(b *testing.B, srv *ldaptest.Server) string {
	b.Helper()
	if srv.Kind == ldaptest.KindSlapd {
		ou := srv.NewOU(b)
		seedBench(b, srv, ou)
		return ou
	}
	ou := fmt.Sprintf("OU=bench%d,%s", benchUsers, srv.BaseDN)
	c := srv.Dial(b)
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(ou, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=user)(mail=*))", []string{"1.1"}, nil), 1000)
	if err == nil && len(res.Entries) == benchUsers {
		return ou
	}
	if err == nil {
		if err := srv.DeleteTree(ou); err != nil {
			b.Fatal(err)
		}
	}
	add := ldap.NewAddRequest(ou, nil)
	add.Attribute("objectClass", []string{"organizationalUnit"})
	if err := c.Add(add); err != nil {
		b.Fatal(err)
	}
	seedBench(b, srv, ou)
	return ou
}

func seedBench(b *testing.B, srv *ldaptest.Server, ou string) {
	t0 := time.Now()
	for i := 0; i < benchUsers; i += 1000 {
		srv.AddUsers(b, ou, makeUsers(b, fmt.Sprintf("b%d", i/1000), 1000))
	}
	b.Logf("%s: seeded %d users with 2 certificates each in %v", srv.Kind, benchUsers, time.Since(t0).Round(time.Millisecond))
}

// heapPeak samples the heap while running fn: the peak of the bytes in
// heap objects (live and not yet collected garbage) and the peak of the
// live heap as the garbage collector last measured it.
func heapPeak(fn func()) (peak, live uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var max, maxLive atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > max.Load() {
				max.Store(v)
			}
			if v := sample[1].Value.Uint64(); v > maxLive.Load() {
				maxLive.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return max.Load(), maxLive.Load()
}

// ldapsearchTime runs ldapsearch -E pr=1000/noprompt for the same
// attributes, filter and transport (StartTLS) and returns its time and the
// entries it printed.
func ldapsearchTime(b *testing.B, srv *ldaptest.Server, ou, filter string, attrs []string) (time.Duration, int) {
	b.Helper()
	if _, err := exec.LookPath("ldapsearch"); err != nil {
		b.Skip("ldapsearch not installed (Debian: ldap-utils)")
	}
	args := append([]string{"-LLL", "-x", "-ZZ", "-H", srv.URL, "-D", srv.AdminDN, "-w", srv.AdminPassword,
		"-b", ou, "-E", "pr=1000/noprompt", "-o", "ldif-wrap=no", filter}, attrs...)
	cmd := exec.Command("ldapsearch", args...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+srv.CAFile)
	var out bytes.Buffer
	cmd.Stdout = &out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("ldapsearch: %v", err)
	}
	d := time.Since(t0)
	n := 0
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "dn: ") {
			n++
		}
	}
	return d, n
}

// BenchmarkRead10k reads 10,000 users with two certificates each (a third
// of them with a userSMIMECertificate too), reports users/s and the peak
// heap in use during the read, and ldapsearch's time for the same read
// (ratio = our time / ldapsearch's). Then it changes 10 users and times
// the delta pass. Gated by SMIMESYNC_BENCH_LDAP=1; run with
// -run '^$' -bench Read10k -benchtime 3x.
func BenchmarkRead10k(b *testing.B) {
	if os.Getenv(benchEnv) != "1" {
		b.Skipf("set %s=1 to seed %d users and run", benchEnv, benchUsers)
	}
	for _, server := range servers() {
		b.Run(server.name, func(b *testing.B) {
			srv := server.start(b)
			ou := benchOU(b, srv)
			cfg := adminConfig(srv, ou)
			logger, _ := testLogger(b)
			s, err := ldapsource.New(cfg, logger)
			if err != nil {
				b.Fatal(err)
			}
			var cookie []byte
			var peak, live uint64
			var firstK uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				n := 0
				p, l := heapPeak(func() {
					var res directory.Result
					res, err = s.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error {
						if n++; n == 1000 {
							firstK = heapNow()
						}
						return nil
					})
					cookie = res.Cookie
				})
				if err != nil {
					b.Fatal(err)
				}
				if n != benchUsers {
					b.Fatalf("read %d users, want %d", n, benchUsers)
				}
				peak, live = max(peak, p), max(live, l)
			}
			b.StopTimer()
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(benchUsers)/per.Seconds(), "users/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(live)/(1<<20), "peak-live-MB")

			filter := ldapsource.DefaultFilter(map[ldaptest.Kind]ldapsource.ServerKind{ldaptest.KindSamba: ldapsource.ServerAD, ldaptest.KindSlapd: ldapsource.ServerOpenLDAP}[srv.Kind])
			attrs := []string{"objectGUID", "mail", "userCertificate", "userSMIMECertificate", "userPrincipalName", "proxyAddresses"}
			if srv.Kind == ldaptest.KindSlapd {
				attrs = []string{"entryUUID", "mail", "userCertificate", "userSMIMECertificate"}
			}
			ld, ln := ldapsearchTime(b, srv, ou, filter, attrs)
			if ln != benchUsers {
				b.Fatalf("ldapsearch printed %d entries", ln)
			}
			b.ReportMetric(per.Seconds()/ld.Seconds(), "x-ldapsearch")
			b.Logf("%s: Source.Read %v (%.0f users/s), ldapsearch -E pr=1000/noprompt %v: ratio %.2f; heap objects peak %.1f MB (at the 1,000th user: %.1f MB), live heap peak %.1f MB",
				srv.Kind, per.Round(time.Millisecond), float64(benchUsers)/per.Seconds(), ld.Round(time.Millisecond),
				per.Seconds()/ld.Seconds(), float64(peak)/(1<<20), float64(firstK)/(1<<20), float64(live)/(1<<20))

			// Delta passes with 10 changed users: the first after the full
			// pass, then one after a delta, which also reads the previous
			// delta's 10 again (AD deltas read one pass behind) and drops
			// them.
			fresh, err := ldaptest.UserCerts("changed@smimesync.test", 2)
			if err != nil {
				b.Fatal(err)
			}
			c := srv.Dial(b)
			res, err := c.SearchWithPaging(ldap.NewSearchRequest(ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 20, 0, false,
				"(mail=*)", []string{"1.1"}, nil), 20)
			if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
				b.Fatal(err)
			}
			for i, name := range []string{"delta10-ms", "delta10-after-delta-ms"} {
				for _, e := range res.Entries[i*10 : i*10+10] {
					srv.SetCertificates(b, e.DN, fresh)
				}
				t0 := time.Now()
				seen := 0
				r, err := s.Read(context.Background(), directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
					if strings.HasSuffix(strings.ToLower(e.DN), strings.ToLower(ou)) && !e.Deleted {
						seen++
					}
					return nil
				})
				d := time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				if seen != 10 {
					b.Errorf("%s: delta yielded %d changed users of the OU, want 10", name, seen)
				}
				cookie = r.Cookie
				b.Logf("%s: delta pass with 10 changed users in a directory of %d (%s): %v", srv.Kind, benchUsers, name, d.Round(time.Microsecond))
				b.ReportMetric(float64(d.Microseconds())/1000, name)
			}
		})
	}
}

func heapNow() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
