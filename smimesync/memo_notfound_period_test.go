package smimesync_test

import (
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestMemoNotFoundLongPeriod: with a RecheckNotFound longer than half of
// Reverify (25h; the bench's default of 24h is one too), the entries no
// recipient matched in one pass are still asked about again together, in
// one pass at the end of the period (Syncer.RecheckNotFound: "Every entry
// waiting for a recipient is then asked about in the same pass"), not
// each at a time of its own. (The certificates, and so the entries'
// hashes, differ from run to run; the first pass is a minute into the
// period, so that a memo Reverify retires, at 12 to 24 hours, retires
// within a period of 25h whatever the hash, and within one of 24h unless
// both hashes fall in its last minute.) 90m and 7m pass.
func TestMemoNotFoundLongPeriod(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	for _, period := range []time.Duration{25 * time.Hour, 24 * time.Hour, 90 * time.Minute, 7 * time.Minute} {
		t.Run(period.String(), func(t *testing.T) {
			r := newMemoRig(t, &smimesync.MemoryState{})
			r.syncer.RecheckNotFound = period
			start := testNow.Truncate(period)
			r.now = start.Add(time.Minute)
			r.mem.SetMissing(alice, true)
			r.mem.SetMissing(bob, true)
			_, lookups, _ := r.pass(t)
			if lookups[alice] == 0 || lookups[bob] == 0 {
				t.Fatalf("first pass: lookups %v", lookups)
			}
			// Passes every period/25 until the period is over: the
			// first pass that asks about either must ask about both,
			// and be the first of the next period.
			step := period / 25
			for r.now = r.now.Add(step); !r.now.After(start.Add(period + step)); r.now = r.now.Add(step) {
				_, lookups, _ := r.pass(t)
				if len(lookups) == 0 {
					continue
				}
				if lookups[alice] == 0 || lookups[bob] == 0 {
					t.Fatalf("%s into the period (of %s): asked about %v only; want both no-recipient entries asked about in one pass",
						r.now.Sub(start), period, lookups)
				}
				if r.now.Before(start.Add(period)) {
					t.Fatalf("%s into the period (of %s): both asked about before its end", r.now.Sub(start), period)
				}
				return
			}
			t.Fatalf("neither asked about again by the end of the period")
		})
	}
}
