package config

import (
	"context"
	"testing"

	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPublished: File.Published reads each sink's store; an unknown sink
// has nothing; without state.path, or with sinks that cannot be built,
// there is no reader.
func TestPublished(t *testing.T) {
	ctx := context.Background()
	c := parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\nstate: {path: state.json}\n")
	key := smimesync.PublishedKey("ldif", "id-alice")
	snap := &smimesync.Snapshot{Version: smimesync.StateVersion, Published: map[string]smimesync.Published{
		key: {Recipient: "r-alice", At: testclock.Now().UTC().Truncate(0)}}}
	if err := c.Store("file", 0).Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	pub := c.Published()
	if pub == nil {
		t.Fatal("no reader for a configuration with state.path")
	}
	got, err := pub(ctx, "file")
	if err != nil || len(got) != 1 || got[key].Recipient != "r-alice" {
		t.Errorf("published of file: %v, %v", got, err)
	}
	if got, err := pub(ctx, "exchange"); got != nil || err != nil {
		t.Errorf("published of a sink not configured: %v, %v", got, err)
	}

	if parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\n").Published() != nil {
		t.Error("a reader without state.path")
	}
	t.Setenv("SMIMESYNC_CONFIG_TEST_SECRET", "s")
	noGraph := parseIn(t, cloudConf)
	if noGraph.Published() != nil {
		t.Error("a reader although the graph sink cannot be built")
	}
}
