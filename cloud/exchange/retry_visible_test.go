package exchange_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRetriesAreVisible: every retry round logs a warning naming the
// attempt, the wait and the cause; a refused connection to the endpoint is
// given up after retry.DialTries, not MaxTries, and marked run-wide.
func TestRetriesAreVisible(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String()
	ln.Close()
	var logs lockedBuffer
	var cfg exchange.Config
	newEnv(t, exchangetest.Config{}, func(c *exchange.Config) {
		c.Endpoints.Exchange = closed
		c.Retry = exchange.RetryPolicy{Base: 10 * time.Millisecond, Cap: 10 * time.Millisecond, MaxTries: 50}
		cfg = *c
	})
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	sink, err := exchange.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = sink.Find(context.Background(), &directory.Entry{ID: "x", DN: "CN=x", Mail: "x@contoso.example"})
	if !errors.Is(err, cloud.ErrUnavailable) || !errors.Is(err, exchange.ErrRetriesExhausted) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Find = %v, want a run-wide 'retries exhausted' naming the refused connection", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %s", d)
	}
	warns := strings.Count(logs.String(), "level=WARN")
	if warns != 2 {
		t.Errorf("%d warnings for 3 tries, want one per retry (2):\n%s", warns, logs.String())
	}
	for _, want := range []string{"attempt=1", "attempt=2", "wait=", "connection refused"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the retry warnings do not say %q:\n%s", want, logs.String())
		}
	}
}
