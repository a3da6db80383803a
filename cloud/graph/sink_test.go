package graph_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testclock"
)

// tenantUsers is the seeded tenant of the lookup tests. The objectGUID
// 3f2504e0-4f89-11d3-9a0c-0305e82c3301 is stored as
// e004253f894fd3119a0c0305e82c3301, whose base64 is
// 4AQlP4lP0xGaDAMF6CwzAQ==.
func tenantUsers() []graphtest.User {
	return []graphtest.User{
		{ID: "u-synced", UserPrincipalName: "alice@corp.example.com", Mail: "alice@example.com",
			ProxyAddresses: []string{"SMTP:alice@example.com"}, OnPremisesImmutableID: "4AQlP4lP0xGaDAMF6CwzAQ==", OnPremisesSyncEnabled: true},
		{ID: "u-upn", UserPrincipalName: "bob@contoso.com", Mail: "robert@contoso.com"},
		{ID: "u-mail", UserPrincipalName: "carol_ext@contoso.onmicrosoft.com", Mail: "carol@contoso.com"},
		{ID: "u-proxy", UserPrincipalName: "dave@contoso.onmicrosoft.com", Mail: "dave@contoso.com",
			ProxyAddresses: []string{"SMTP:dave@contoso.com", "smtp:d.old@contoso.com", "smtp:robert@contoso.com"}},
		{ID: "u-twin1", UserPrincipalName: "twin1@contoso.com", Mail: "twins@contoso.com"},
		{ID: "u-twin2", UserPrincipalName: "twin2@contoso.com", Mail: "twins@contoso.com"},
	}
}

func TestFind(t *testing.T) {
	for _, mode := range []graph.LookupMode{graph.LookupPreload, graph.LookupPerEntry} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, tenantUsers(), nil, func(c *graph.Config) { c.Lookup = mode })
			for _, tc := range []struct {
				name     string
				entry    directory.Entry
				want     string
				readOnly bool
				err      error
			}{
				{"immutable id wins over UPN", directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", UserPrincipalName: "bob@contoso.com"}, "u-synced", true, nil},
				{"UPN, any case", directory.Entry{ID: "CN=Bob", UserPrincipalName: "Bob@Contoso.com", Mail: "carol@contoso.com"}, "u-upn", false, nil},
				{"mail", directory.Entry{ID: "CN=Carol", UserPrincipalName: "carol@corp.example.com", Mail: "Carol@contoso.com"}, "u-mail", false, nil},
				{"proxy address", directory.Entry{ID: "CN=Dave", ProxyAddresses: []string{"SMTP:D.Old@contoso.com", "X500:/o=x"}}, "u-proxy", false, nil},
				{"mail beats proxy", directory.Entry{ID: "CN=X", Mail: "robert@contoso.com"}, "u-upn", false, nil},
				{"ambiguous", directory.Entry{ID: "CN=Twins", Mail: "twins@contoso.com"}, "", false, graph.ErrAmbiguous},
				{"nobody", directory.Entry{ID: "CN=Nobody", UserPrincipalName: "nobody@contoso.com", Mail: "nobody@contoso.com"}, "", false, cloud.ErrNotFound},
				{"nothing to look up", directory.Entry{ID: "CN=Empty"}, "", false, cloud.ErrNotFound},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tc.entry.DN = tc.entry.ID
					r, err := e.sink.Find(context.Background(), &tc.entry)
					if tc.err != nil {
						if !errors.Is(err, tc.err) {
							t.Fatalf("Find = %+v, %v; want an error wrapping %v", r, err, tc.err)
						}
						if !strings.Contains(err.Error(), tc.entry.DN) {
							t.Errorf("error %q does not name the entry", err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if r.ID != tc.want || r.Kind != graph.Kind || (r.ReadOnly != "") != tc.readOnly {
						t.Fatalf("Find = %+v, want user %s (read-only %v)", r, tc.want, tc.readOnly)
					}
					if tc.readOnly && r.ReadOnly != graph.ReadOnlySynced {
						t.Errorf("ReadOnly = %q", r.ReadOnly)
					}
				})
			}
			st := e.graph.Stats()
			if mode == graph.LookupPreload && st.Requests != 1 {
				t.Errorf("list mode sent %d requests for 8 lookups, want 1 listing", st.Requests)
			}
			if mode == graph.LookupPerEntry && st.Batches == 0 {
				t.Errorf("batch mode sent no $batch")
			}
		})
	}
}

func TestFindPagesThroughUsers(t *testing.T) {
	var users []graphtest.User
	for i := range 25 {
		users = append(users, graphtest.User{UserPrincipalName: fmt.Sprintf("user%02d@contoso.com", i)})
	}
	e := newEnv(t, users, nil, func(c *graph.Config) { c.PageSize = 10 })
	r, err := e.sink.Find(context.Background(), &directory.Entry{ID: "CN=24", UserPrincipalName: "user24@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "user24@contoso.com" {
		t.Fatalf("found %+v", r)
	}
	if got := e.sink.Stats().Pages; got != 3 {
		t.Errorf("read %d pages of 10 for 25 users, want 3", got)
	}
}

func TestCurrentIsUnreadable(t *testing.T) {
	e := newEnv(t, nil, nil, nil)
	_, err := e.sink.Current(context.Background(), &cloud.Recipient{ID: "x", Name: "x@contoso.com"})
	if !errors.Is(err, cloud.ErrUnreadable) || !strings.Contains(err.Error(), "x@contoso.com") {
		t.Fatalf("Current: %v", err)
	}
}

func certs(t testing.TB, files ...string) cloud.Certificates {
	var c cloud.Certificates
	for _, f := range files {
		c.UserCertificate = append(c.UserCertificate, readCert(t, f).Raw)
	}
	return c
}

func mustValue(t testing.TB, file string, f graph.Format) string {
	v, err := graph.CertificateUserID(readCert(t, file), f)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWriteMergesAndSkipsWhatIsThere(t *testing.T) {
	const pn = "X509:<PN>bob@contoso.com"
	stale := "X509:<I>CN=Old CA<SR>01"
	e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "bob@contoso.com", CertificateUserIDs: []string{stale, pn}}}, nil, nil)
	ctx := context.Background()
	r, err := e.sink.Find(ctx, &directory.Entry{ID: "CN=Bob", UserPrincipalName: "bob@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sink.Write(ctx, r, certs(t, "carol.der", "alice.der")); err != nil {
		t.Fatal(err)
	}
	u, _ := e.graph.User("u1")
	// Another CA's value stays: the sink writes none of its certificates.
	want := []string{stale, pn, mustValue(t, "carol.der", graph.FormatIssuerSerial), mustValue(t, "alice.der", graph.FormatIssuerSerial)}
	if !sameSet(u.CertificateUserIDs, want) {
		t.Fatalf("user holds %q, want %q", u.CertificateUserIDs, want)
	}
	// The same set again, from this sink and from a fresh one: no PATCH.
	if err := e.sink.Write(ctx, r, certs(t, "alice.der", "carol.der")); err != nil {
		t.Fatal(err)
	}
	if err := e.newSink(t, nil).Write(ctx, r, certs(t, "alice.der", "carol.der")); err != nil {
		t.Fatal(err)
	}
	if n := e.graph.Stats().Writes; n != 1 {
		t.Fatalf("%d writes, want 1", n)
	}
	// Nothing left, by default: no certificate names a CA to manage, so
	// nothing is removed (the documented consequence).
	if err := e.sink.Write(ctx, r, cloud.Certificates{}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.graph.User("u1"); !sameSet(u.CertificateUserIDs, want) {
		t.Fatalf("after removing all, default: %q", u.CertificateUserIDs)
	}
	// With the CA named in managed_issuers: its values go, the others stay.
	managed := e.newSink(t, func(c *graph.Config) { c.CertificateUserIDs.ManagedIssuers = []string{issuerOf(t, "alice.der")} })
	if err := managed.Write(ctx, r, cloud.Certificates{}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.graph.User("u1"); !sameSet(u.CertificateUserIDs, []string{stale, pn}) {
		t.Fatalf("after removing all, managed_issuers: %q", u.CertificateUserIDs)
	}
	// manage_all_of_format: every issuer-and-serial value goes.
	all := e.newSink(t, func(c *graph.Config) { c.CertificateUserIDs.ManageAllOfFormat = true })
	if err := all.Write(ctx, r, cloud.Certificates{}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.graph.User("u1"); !slices.Equal(u.CertificateUserIDs, []string{pn}) {
		t.Fatalf("after removing all, manage_all_of_format: %q", u.CertificateUserIDs)
	}
}

func issuerOf(t testing.TB, file string) string {
	t.Helper()
	i, err := graph.IssuerString(readCert(t, file).RawIssuer)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestWriteKeepsOtherCAsBindings: by default, the first run keeps the
// issuer-and-serial values of CAs the sink writes no certificate of (a
// partner CA, a national ID card), and replaces those of the CA it writes.
func TestWriteKeepsOtherCAsBindings(t *testing.T) {
	const idCard = "X509:<I>C=EE,O=SK ID Solutions AS,CN=ESTEID2018<SR>0123abcd"
	contosoOld := "X509:<I>" + issuerOf(t, "alice.der") + "<SR>0fff"
	e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com", CertificateUserIDs: []string{idCard, contosoOld}}}, nil, nil)
	if err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}, certs(t, "alice.der")); err != nil {
		t.Fatal(err)
	}
	u, _ := e.graph.User("u1")
	if want := []string{idCard, mustValue(t, "alice.der", graph.FormatIssuerSerial)}; !sameSet(u.CertificateUserIDs, want) {
		t.Fatalf("user holds %q, want %q", u.CertificateUserIDs, want)
	}
}

// TestWriteFormatsKeepOthers: with a format without an issuer, the values
// of that format the sink does not write are kept unless
// manage_all_of_format says otherwise.
func TestWriteFormatsKeepOthers(t *testing.T) {
	const partner = "X509:<SKI>00112233445566778899AABBCCDDEEFF00112233"
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprint("manage_all_of_format=", all), func(t *testing.T) {
			e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com", CertificateUserIDs: []string{partner}}}, nil,
				func(c *graph.Config) {
					c.CertificateUserIDs.Format = graph.FormatSKI
					c.CertificateUserIDs.ManageAllOfFormat = all
				})
			if err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}, certs(t, "alice.der")); err != nil {
				t.Fatal(err)
			}
			want := []string{partner, mustValue(t, "alice.der", graph.FormatSKI)}
			if all {
				want = want[1:]
			}
			if u, _ := e.graph.User("u1"); !sameSet(u.CertificateUserIDs, want) {
				t.Fatalf("user holds %q, want %q", u.CertificateUserIDs, want)
			}
		})
	}
}

// TestWriteReadsTheListAfresh: an administrator's change made between the
// lookup (which read the list) and the Write is kept, not undone by a
// PATCH computed from the lookup's copy.
func TestWriteReadsTheListAfresh(t *testing.T) {
	for _, mode := range []graph.LookupMode{graph.LookupPreload, graph.LookupPerEntry} {
		t.Run(string(mode), func(t *testing.T) {
			const admin = "X509:<PN>bob@contoso.com"
			e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "bob@contoso.com"}}, nil, func(c *graph.Config) { c.Lookup = mode })
			ctx := context.Background()
			r, err := e.sink.Find(ctx, &directory.Entry{ID: "CN=Bob", UserPrincipalName: "bob@contoso.com"})
			if err != nil {
				t.Fatal(err)
			}
			e.graph.SetCertificateUserIDs("u1", []string{admin})
			if err := e.sink.Write(ctx, r, certs(t, "alice.der")); err != nil {
				t.Fatal(err)
			}
			if u, _ := e.graph.User("u1"); !sameSet(u.CertificateUserIDs, []string{admin, mustValue(t, "alice.der", graph.FormatIssuerSerial)}) {
				t.Fatalf("user holds %q: the administrator's value was undone", u.CertificateUserIDs)
			}
			// And after the sink's own PATCH: the administrator removes his
			// value, then the user's certificate is renewed.
			e.graph.SetCertificateUserIDs("u1", []string{mustValue(t, "alice.der", graph.FormatIssuerSerial)})
			if err := e.sink.Write(ctx, r, certs(t, "carol.der")); err != nil {
				t.Fatal(err)
			}
			if u, _ := e.graph.User("u1"); !slices.Equal(u.CertificateUserIDs, []string{mustValue(t, "carol.der", graph.FormatIssuerSerial)}) {
				t.Fatalf("user holds %q: the administrator's removal was undone", u.CertificateUserIDs)
			}
		})
	}
}

// TestWriteRefusesNullAuthorizationInfo: an answer whose authorizationInfo
// is null is not taken for an empty list (which would drop every value the
// sink does not manage): Write fails and sends no PATCH.
func TestWriteRefusesNullAuthorizationInfo(t *testing.T) {
	e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com",
		CertificateUserIDs: []string{"X509:<PN>alice@contoso.com"}, NullAuthorizationInfo: true}}, nil, nil)
	err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}, certs(t, "alice.der"))
	if err == nil || !strings.Contains(err.Error(), "authorizationInfo") || !strings.Contains(err.Error(), "alice@contoso.com") {
		t.Fatalf("Write: %v, want an error about the missing authorizationInfo", err)
	}
	if st := e.graph.Stats(); st.Writes != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v: a PATCH was sent", st)
	}
	if u, _ := e.graph.User("u1"); !slices.Equal(u.CertificateUserIDs, []string{"X509:<PN>alice@contoso.com"}) {
		t.Fatalf("user holds %q", u.CertificateUserIDs)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestWriteFormats(t *testing.T) {
	for _, f := range []graph.Format{graph.FormatSKI, graph.FormatSHA1PublicKey, graph.FormatRFC822} {
		t.Run(string(f), func(t *testing.T) {
			e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com"}}, nil,
				func(c *graph.Config) { c.CertificateUserIDs.Format = f })
			r := &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}
			if err := e.sink.Write(context.Background(), r, certs(t, "alice.der")); err != nil {
				t.Fatal(err)
			}
			u, _ := e.graph.User("u1")
			if want := mustValue(t, "alice.der", f); !slices.Equal(u.CertificateUserIDs, []string{want}) {
				t.Fatalf("user holds %q, want %q", u.CertificateUserIDs, want)
			}
		})
	}
}

func TestWriteNotWritable(t *testing.T) {
	e := newEnv(t, tenantUsers(), nil, nil)
	ctx := context.Background()
	// Known synced from the lookup: refused without a request.
	if _, err := e.sink.Find(ctx, &directory.Entry{ID: "CN=Alice", UserPrincipalName: "alice@corp.example.com"}); err != nil {
		t.Fatal(err)
	}
	synced := &cloud.Recipient{ID: "u-synced", Name: "alice@corp.example.com"}
	before := e.graph.Stats().Requests
	err := e.sink.Write(ctx, synced, certs(t, "alice.der"))
	var nw *cloud.NotWritableError
	if !errors.As(err, &nw) || !errors.Is(err, cloud.ErrNotWritable) || nw.Recipient != "alice@corp.example.com" {
		t.Fatalf("Write to a synced user: %v", err)
	}
	if st := e.graph.Stats(); st.Requests != before {
		t.Errorf("%d requests for a user known to be synced, want none", st.Requests-before)
	}
	// Synced after the lookup: the fresh read before the PATCH sees it.
	r, err := e.sink.Find(ctx, &directory.Entry{ID: "CN=Bob", UserPrincipalName: "bob@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	e.graph.SetOnPremisesSyncEnabled("u-upn", true)
	err = e.sink.Write(ctx, r, certs(t, "alice.der"))
	if !errors.As(err, &nw) || nw.Reason != graph.ReadOnlySynced {
		t.Fatalf("Write after the user became synced: %v", err)
	}
	if st := e.graph.Stats(); st.Refused != 0 || st.Writes != 0 {
		t.Fatalf("stats %+v, want no PATCH", st)
	}
	// Synced between the read and the PATCH: the service refuses it.
	e.graph.SetOnPremisesSyncEnabled("u-upn", false)
	e.sink = e.newSink(t, func(c *graph.Config) {
		c.HTTPClient = &http.Client{Transport: &afterFirst{next: c.HTTPClient.Transport, do: func() { e.graph.SetOnPremisesSyncEnabled("u-upn", true) }}}
	})
	err = e.sink.Write(ctx, r, certs(t, "alice.der"))
	if !errors.As(err, &nw) || !strings.Contains(nw.Reason, "on-premises mastered") {
		t.Fatalf("Write after the user became synced: %v", err)
	}
	if st := e.graph.Stats(); st.Refused != 1 || st.Writes != 0 {
		t.Fatalf("stats %+v, want one refused PATCH", st)
	}
}

// afterFirst is an http.RoundTripper that calls do once the first request
// has been answered.
type afterFirst struct {
	next http.RoundTripper
	do   func()
	once sync.Once
}

func (a *afterFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(req)
	a.once.Do(a.do)
	return resp, err
}

func TestWriteValueInUse(t *testing.T) {
	v := "X509:<SKI>" + strings.ToUpper(fmt.Sprintf("%x", readCert(t, "alice.der").SubjectKeyId))
	e := newEnv(t, []graphtest.User{
		{ID: "u1", UserPrincipalName: "a@contoso.com"},
		{ID: "u2", UserPrincipalName: "b@contoso.com", CertificateUserIDs: []string{v}},
	}, nil, func(c *graph.Config) { c.CertificateUserIDs.Format = graph.FormatSKI })
	err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "u1", Name: "a@contoso.com"}, certs(t, "alice.der"))
	var se *graph.ServiceError
	if !errors.Is(err, graph.ErrValueInUse) || !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "a@contoso.com") {
		t.Fatalf("Write: %v", err)
	}
}

func TestWriteMissingUser(t *testing.T) {
	e := newEnv(t, nil, nil, nil)
	err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "gone", Name: "gone@contoso.com"}, certs(t, "alice.der"))
	if !errors.Is(err, cloud.ErrNotFound) {
		t.Fatalf("Write to a missing user: %v", err)
	}
}

// TestThrottleStorm writes 120 users with a budget of 15 writes per
// emulated 150 s (the clock 1,000 times faster: 0.15 s a window), from 40
// goroutines: every write must land exactly once.
func TestThrottleStorm(t *testing.T) {
	const n = 120
	var users []graphtest.User
	for i := range n {
		users = append(users, graphtest.User{ID: fmt.Sprintf("u%03d", i), UserPrincipalName: fmt.Sprintf("u%03d@contoso.com", i)})
	}
	e := newEnv(t, users, func(c *graphtest.Config) {
		c.WriteBudget = 15
		c.TimeScale = 1000
	}, nil)
	p := newPKI(t) // one certificate (one serial, one value) per user
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 40)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			addr := fmt.Sprintf("u%03d@contoso.com", i)
			err := e.sink.Write(ctx, &cloud.Recipient{ID: fmt.Sprintf("u%03d", i), Name: addr},
				cloud.Certificates{UserCertificate: [][]byte{p.issue(t, addr, int64(i+1), testclock.Now().Add(-time.Hour), testclock.Now().Add(time.Hour))}})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := e.graph.Stats()
	if st.Writes != n || st.Throttled == 0 {
		t.Fatalf("stats %+v: want %d writes and some throttling", st, n)
	}
	count := map[string]int{}
	for _, w := range e.graph.Writes() {
		count[w.UserID]++
	}
	for id, c := range count {
		if c != 1 {
			t.Errorf("user %s written %d times", id, c)
		}
	}
	if len(count) != n {
		t.Errorf("%d users written, want %d", len(count), n)
	}
	t.Logf("%d writes, %d throttled answers, %d HTTP requests (%d $batch)", st.Writes, st.Throttled, st.Requests, st.Batches)
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   graphtest.Fault
		timeout time.Duration
	}{
		{"503 on the $batch", graphtest.Fault{Path: "/$batch", Status: 503, Times: 2}, 0},
		{"503 with Retry-After", graphtest.Fault{Path: "/$batch", Status: 503, RetryAfter: "0.01"}, 0},
		{"500 inside the batch", graphtest.Fault{InBatch: true, Method: "PATCH", Status: 500}, 0},
		{"429 inside the batch without Retry-After", graphtest.Fault{InBatch: true, Method: "PATCH", Status: 429}, 0},
		{"dropped connection", graphtest.Fault{Path: "/$batch", Drop: true}, 0},
		{"slower than the request timeout", graphtest.Fault{Path: "/$batch", Delay: 2 * time.Second}, 200 * time.Millisecond},
		{"slow but in time", graphtest.Fault{Path: "/$batch", Delay: 20 * time.Millisecond}, 0},
		{"listing fails once", graphtest.Fault{Path: "/users", Method: "GET", Status: 504}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com"}}, nil,
				func(c *graph.Config) {
					if tc.timeout > 0 {
						c.RequestTimeout = tc.timeout
					}
				})
			e.graph.Inject(tc.fault)
			ctx := context.Background()
			r, err := e.sink.Find(ctx, &directory.Entry{ID: "CN=Alice", UserPrincipalName: "alice@contoso.com"})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.sink.Write(ctx, r, certs(t, "alice.der")); err != nil {
				t.Fatal(err)
			}
			if e.graph.PendingFaults() != 0 {
				t.Fatal("the fault did not fire")
			}
			if n := len(e.graph.Writes()); n != 1 {
				t.Fatalf("%d writes, want 1", n)
			}
		})
	}
}

func TestPersistentFailureGivesUp(t *testing.T) {
	e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com"}}, nil, nil)
	e.graph.Inject(graphtest.Fault{Path: "/$batch", Status: 503, Times: 100})
	err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}, certs(t, "alice.der"))
	var se *graph.ServiceError
	if !errors.As(err, &se) || se.Status != 503 || !strings.Contains(err.Error(), "alice@contoso.com") {
		t.Fatalf("Write: %v", err)
	}
	if got := 100 - e.graph.PendingFaults(); got != fastRetry.MaxTries {
		t.Errorf("%d tries, want %d", got, fastRetry.MaxTries)
	}
}

func TestWriteCancelled(t *testing.T) {
	e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com"}}, nil, nil)
	e.graph.Inject(graphtest.Fault{Path: "/$batch", Delay: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.sink.Write(ctx, &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}, certs(t, "alice.der"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Write returned after %v", d)
	}
}

func TestWrongAudienceRefused(t *testing.T) {
	e := newEnv(t, tenantUsers(), nil, nil)
	e.tokens.SetAudience(tenantID, clientID, "https://outlook.office365.com")
	_, err := e.sink.Find(context.Background(), &directory.Entry{ID: "CN=Bob", UserPrincipalName: "bob@contoso.com"})
	var se *graph.ServiceError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || !strings.Contains(se.Message, "audience") {
		t.Fatalf("Find with a token for Exchange: %v", err)
	}
	if st := e.graph.Stats(); st.Unauthorized == 0 || st.Reads != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewConfigErrors(t *testing.T) {
	if _, err := graph.New(graph.Config{}); !errors.Is(err, graph.ErrConfig) {
		t.Errorf("no credential: %v", err)
	}
	for _, mod := range []func(*graph.Config){
		func(c *graph.Config) { c.Lookup = "guess" },
		func(c *graph.Config) { c.CertificateUserIDs.Format = "upn" },
		func(c *graph.Config) { c.Endpoints.Graph = "graph.example" },
	} {
		c := graph.Config{Credential: fakeCred{}}
		mod(&c)
		if _, err := graph.New(c); !errors.Is(err, graph.ErrConfig) {
			t.Errorf("%+v: %v, want an error wrapping ErrConfig", c, err)
		}
	}
}

// TestWriteBudgetPaces: a sink told the service's budget (10 writes per
// emulated 150 s, the clock 1,000 times faster) keeps to it and is never
// throttled.
func TestWriteBudgetPaces(t *testing.T) {
	const n = 35
	var users []graphtest.User
	for i := range n {
		users = append(users, graphtest.User{ID: fmt.Sprintf("u%03d", i), UserPrincipalName: fmt.Sprintf("u%03d@contoso.com", i)})
	}
	e := newEnv(t, users, func(c *graphtest.Config) {
		c.WriteBudget = 10
		c.TimeScale = 1000
	}, func(c *graph.Config) {
		c.WriteBudget = graph.WriteBudget{Writes: 10, Window: 150 * time.Millisecond}
	})
	p := newPKI(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			addr := fmt.Sprintf("u%03d@contoso.com", i)
			err := e.sink.Write(context.Background(), &cloud.Recipient{ID: fmt.Sprintf("u%03d", i), Name: addr},
				cloud.Certificates{UserCertificate: [][]byte{p.issue(t, addr, int64(i+1), testclock.Now().Add(-time.Hour), testclock.Now().Add(time.Hour))}})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := e.graph.Stats(); st.Writes != n || st.Throttled != 0 {
		t.Fatalf("stats %+v: want %d writes, none throttled", st, n)
	}
}

// recorder is an http.RoundTripper that notes each request's
// client-request-id and Retry-Attempt headers.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen [][2]string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, [2]string{req.Header.Get("client-request-id"), req.Header.Get("Retry-Attempt")})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func TestRetriesKeepClientRequestID(t *testing.T) {
	var rec *recorder
	e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com"}}, nil, nil)
	e.sink = e.newSink(t, func(c *graph.Config) {
		rec = &recorder{next: c.HTTPClient.Transport}
		c.HTTPClient = &http.Client{Transport: rec}
	})
	e.graph.Inject(graphtest.Fault{Path: "/$batch", Status: 503, Times: 2})
	if err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}, certs(t, "alice.der")); err != nil {
		t.Fatal(err)
	}
	// The GET of the user's list (in a batch) three times, then the PATCH.
	if len(rec.seen) != 4 {
		t.Fatalf("requests %q, want 4", rec.seen)
	}
	id := rec.seen[0][0]
	for i, s := range rec.seen[:3] {
		if s[0] != id || id == "" || s[1] != []string{"", "1", "2"}[i] {
			t.Fatalf("attempt %d: client-request-id %q, Retry-Attempt %q; first was %q", i, s[0], s[1], id)
		}
	}
	if rec.seen[3][0] == id || rec.seen[3][1] != "" {
		t.Errorf("the next call: %q", rec.seen[3])
	}
}

func TestFailedListingIsNotRepeatedPerEntry(t *testing.T) {
	e := newEnv(t, tenantUsers(), nil, nil)
	e.graph.Inject(graphtest.Fault{Path: "/users", Status: 403, Times: 10})
	for _, upn := range []string{"bob@contoso.com", "carol_ext@contoso.onmicrosoft.com", "dave@contoso.onmicrosoft.com"} {
		_, err := e.sink.Find(context.Background(), &directory.Entry{ID: "CN=" + upn, UserPrincipalName: upn})
		var se *graph.ServiceError
		if !errors.As(err, &se) || se.Status != 403 {
			t.Fatalf("Find: %v", err)
		}
	}
	if n := e.graph.Stats().Requests; n != 1 {
		t.Fatalf("%d listing requests for 3 lookups, want 1", n)
	}
}
