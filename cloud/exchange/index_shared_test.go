package exchange_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
)

// TestIndexLoadOutlivesTheCallerWhoStartedIt: the Find that starts the
// tenant's index load gives up; the Find waiting for the same load gets
// the index from that one Get-Recipient listing, not from a second one.
func TestIndexLoadOutlivesTheCallerWhoStartedIt(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, nil)
	e.exo.Add(seed()...)
	e.exo.Fail(exchangetest.Fault{Cmdlet: "Get-Recipient", Kind: exchangetest.FaultSlow, Delay: 400 * time.Millisecond})

	first, cancel := context.WithCancel(ctx(t))
	firstErr := make(chan error, 1)
	go func() {
		_, err := e.sink.Find(first, &directory.Entry{DN: "cn=alice", Mail: "alice@contoso.com"})
		firstErr <- err
	}()
	waitUntil(t, func() bool { return e.exo.Requests("Get-Recipient") == 1 })

	second := make(chan error, 1)
	go func() {
		r, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=bob", Mail: "bob@contoso.com"})
		if err == nil && r.Name != "bob@contoso.com" {
			err = errors.New("found " + r.Name)
		}
		second <- err
	}()
	time.Sleep(50 * time.Millisecond) // the second Find joins the load
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled Find: %v, want context.Canceled", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the waiting Find: %v", err)
	}
	if n := e.exo.Requests("Get-Recipient"); n != 1 {
		t.Errorf("%d Get-Recipient listings, want the one both Finds shared", n)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFindFromTheIndex: through the preloaded index, Find answers with the
// recipient's primary address as the service writes it, by any of its
// smtp: addresses in any case; an address two recipients list finds the
// one listed first; and each answer is the caller's own.
func TestFindFromTheIndex(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, func(c *exchange.Config) { c.PageSize = 1 })
	e.exo.Add(
		// The emulator lists by Guid: ...01 comes first.
		exchangetest.Recipient{Guid: "0a000000-0000-4000-8000-000000000002", PrimarySmtpAddress: "Second@Contoso.com", EmailAddresses: []string{"smtp:shared@contoso.com"}},
		exchangetest.Recipient{Guid: "0a000000-0000-4000-8000-000000000001", PrimarySmtpAddress: "First.Person@Contoso.com", EmailAddresses: []string{"smtp:Shared@Contoso.com", "smtp:fp@fabrikam.com"}},
	)
	for _, tt := range []struct {
		entry    directory.Entry
		id, name string
	}{
		{directory.Entry{DN: "cn=first", Mail: "FIRST.PERSON@contoso.com"}, "0a000000-0000-4000-8000-000000000001", "First.Person@Contoso.com"},
		{directory.Entry{DN: "cn=alias", ProxyAddresses: []string{"smtp:FP@Fabrikam.com"}}, "0a000000-0000-4000-8000-000000000001", "First.Person@Contoso.com"},
		{directory.Entry{DN: "cn=shared", Mail: "shared@contoso.com"}, "0a000000-0000-4000-8000-000000000001", "First.Person@Contoso.com"},
		{directory.Entry{DN: "cn=second", UserPrincipalName: "second@contoso.com"}, "0a000000-0000-4000-8000-000000000002", "Second@Contoso.com"},
	} {
		r, err := e.sink.Find(ctx(t), &tt.entry)
		if err != nil {
			t.Fatalf("%s: %v", tt.entry.DN, err)
		}
		if r.ID != tt.id || r.Name != tt.name || r.Kind != "UserMailbox" || r.ReadOnly != "" {
			t.Errorf("%s: found %+v, want %s %s", tt.entry.DN, *r, tt.id, tt.name)
		}
		r.ID, r.Name = "changed", "changed"
	}
	if r, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=again", Mail: "second@contoso.com"}); err != nil || r.ID != "0a000000-0000-4000-8000-000000000002" || r.Name != "Second@Contoso.com" {
		t.Errorf("after changing an answer, Find gives %+v, %v", r, err)
	}
	if n := e.exo.Requests("Get-Recipient"); n != 2 {
		t.Errorf("%d Get-Recipient requests, want the 2 pages of one listing", n)
	}
}
