package exchange_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
