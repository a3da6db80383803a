package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/smimesync"
)

// aliceBlobs reads how many userSMIMECertificate values the file sink
// holds for Alice; -1 when she is not there (yet).
func aliceBlobs(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var doc struct {
		Recipients map[string]cloud.FileRecipient `json:"recipients"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return -1
	}
	r, ok := doc.Recipients["alice@smime.example"]
	if !ok {
		return -1
	}
	return len(r.UserSMIMECertificate)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServiceExample runs the example with a short interval while its
// LDIF file changes: the change is published by the next pass, /healthz
// and /metrics answer, a second instance is refused, and a stop returns
// nil with the lock let go.
func TestServiceExample(t *testing.T) {
	dir := t.TempDir()
	ldif := filepath.Join(dir, "users.ldif")
	b, err := os.ReadFile("../smimesync/testdata/users.ldif")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ldif, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, ldif, dir, "127.0.0.1:0", 100*time.Millisecond, func(a string) { addrs <- a })
	}()
	defer func() { cancel(); <-done }()
	addr := "http://" + <-addrs

	published := filepath.Join(dir, "published.json")
	waitFor(t, "Alice's blob to be published", func() bool { return aliceBlobs(published) == 1 })

	// The directory changes: Alice's blob is gone.
	var out []string
	skipping := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if skipping = strings.HasPrefix(line, "userSMIMECertificate::") || (skipping && strings.HasPrefix(line, " ")); !skipping {
			out = append(out, line)
		}
	}
	if err := os.WriteFile(ldif+".new", []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ldif+".new", ldif); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next pass to take Alice's blob away", func() bool { return aliceBlobs(published) == 0 })

	// The file shows a write a moment before the hooks have counted it.
	waitFor(t, "/metrics to count the replace of Alice", func() bool {
		code, body := get(t, addr+"/metrics")
		return code == http.StatusOK && strings.Contains(body, `smimesync_recipients_changed_total{action="replace",sink="file"} 1`)
	})
	waitFor(t, "/healthz to say ok", func() bool {
		code, body := get(t, addr+"/healthz")
		return code == http.StatusOK && strings.Contains(body, `"status":"ok"`)
	})
	if err := run(context.Background(), ldif, dir, "", time.Hour, nil); !errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("second instance: %v, want ErrLocked", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after a stop: %v", err)
	}
	done <- nil // for the deferred wait
	state := &smimesync.BoltState{Path: filepath.Join(dir, "state.db")}
	unlock, err := state.Lock()
	if err != nil {
		t.Fatalf("the lock is held after run returned: %v", err)
	}
	defer unlock()
	// The state is the store: it remembers what was published.
	snap, err := state.Load(context.Background())
	if err != nil || len(snap.Published) == 0 {
		t.Errorf("the state in state.db: %v, %v", snap, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a state.json beside the store: %v", err)
	}
}
