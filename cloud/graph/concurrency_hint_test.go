package graph_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
	"github.com/smimesync/go-smimesync/directory"
)

// noSignIn is a credential for tests that send nothing.
type noSignIn struct{}

func (noSignIn) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestPreferredConcurrency: the sink states the Syncer concurrency it
// wants (40 with the defaults, the value the example binary used to set
// for graph), following BatchSize.
func TestPreferredConcurrency(t *testing.T) {
	for _, tc := range []struct {
		batchSize, want int
	}{{0, 40}, {graph.MaxBatchSize, 40}, {5, 10}, {1, 2}} {
		s, err := graph.New(graph.Config{Credential: noSignIn{}, BatchSize: tc.batchSize})
		if err != nil {
			t.Fatal(err)
		}
		var sink cloud.Sink = s
		h, ok := sink.(cloud.ConcurrencyHinter)
		if !ok {
			t.Fatal("the graph sink is not a cloud.ConcurrencyHinter")
		}
		if got := h.PreferredConcurrency(); got != tc.want {
			t.Errorf("batch_size %d: PreferredConcurrency = %d, want %d", tc.batchSize, got, tc.want)
		}
	}
}

// TestConfigErrorKeepsAzauths: an endpoint azauth refuses is a
// *graph.ConfigError naming the field, through which azauth's own error
// stays reachable.
func TestConfigErrorKeepsAzauths(t *testing.T) {
	_, err := graph.New(graph.Config{Credential: noSignIn{}, Endpoints: azauth.Endpoints{Graph: "http://graph.microsoft.com"}})
	var ce *graph.ConfigError
	if !errors.As(err, &ce) || ce.Field != "endpoints.graph" || !errors.Is(err, graph.ErrConfig) {
		t.Fatalf("New = %v, want a *graph.ConfigError for endpoints.graph", err)
	}
	var ae *azauth.ConfigError
	if !errors.As(err, &ae) || !errors.Is(err, azauth.ErrConfig) {
		t.Errorf("New = %v: azauth's *ConfigError is not reachable", err)
	}
	_, err = graph.New(graph.Config{Credential: noSignIn{}, Lookup: "guess"})
	if !errors.As(err, &ce) || ce.Field != "lookup" || errors.Is(err, azauth.ErrConfig) {
		t.Errorf("New with lookup guess = %v, want the sink's own *graph.ConfigError", err)
	}
}

// TestListingOutlivesTheCallerWhoStartedIt: the Find that starts the
// users listing gives up; the Find waiting for the same listing gets its
// answer from that one listing, not from a second one.
func TestListingOutlivesTheCallerWhoStartedIt(t *testing.T) {
	e := newEnv(t, tenantUsers(), nil, nil)
	e.graph.Inject(graphtest.Fault{Method: "GET", Path: "/users", Delay: 400 * time.Millisecond})

	first, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := e.sink.Find(first, &directory.Entry{DN: "CN=Bob", ID: "CN=Bob", UserPrincipalName: "bob@contoso.com"})
		firstErr <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.graph.Stats().Requests < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no listing request in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		r, err := e.sink.Find(context.Background(), &directory.Entry{DN: "CN=Carol", ID: "CN=Carol", Mail: "carol@contoso.com"})
		if err == nil && r.ID != "u-mail" {
			err = errors.New("found " + r.ID)
		}
		second <- err
	}()
	time.Sleep(50 * time.Millisecond) // the second Find joins the listing
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled Find: %v, want context.Canceled", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the waiting Find: %v", err)
	}
	if n := e.graph.Stats().Requests; n != 1 {
		t.Errorf("%d requests, want the one listing both Finds shared", n)
	}
}
