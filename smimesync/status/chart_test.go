package status

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// TestExpiryChart: a user counts once, in the week their LAST kept
// certificate expires; dropped values do not count; users whose kept
// certificates all expired, or who keep one beyond the year, are counted
// beside the chart.
func TestExpiryChart(t *testing.T) {
	now := time.Now().UTC()
	at := func(d time.Duration) time.Time { return now.Add(d) }
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	entry := func(keep []time.Duration, drop ...time.Duration) *smimesync.Change {
		e := &smimesync.Change{Action: smimesync.ActionUnchanged}
		for _, d := range keep {
			e.Keep = append(e.Keep, smimesync.Value{NotAfter: at(d)})
		}
		for _, d := range drop {
			e.Drop = append(e.Drop, smimesync.Value{NotAfter: at(d), Reasons: []smimesync.Reason{smimesync.ReasonNoMatchingAddress}})
		}
		return e
	}
	changes := []*smimesync.Change{
		entry([]time.Duration{2 * day, 10 * day}),           // week 1, not week 0
		entry([]time.Duration{10 * day}, 400*day),           // week 1: a dropped value does not extend it
		entry([]time.Duration{51*week + day}),               // the last week
		entry([]time.Duration{-day}),                        // expired since the pass
		entry([]time.Duration{-day, 3 * day}),               // week 0
		entry([]time.Duration{53 * week}),                   // beyond the chart
		entry(nil, 5*day),                                   // no usable certificate: not on the chart
		{Keep: []smimesync.Value{{Attribute: "no expiry"}}}, // no expiry known
	}
	// The users as a report store keeps them: the chart reads its expiry
	// index (report.Store.Expiries).
	for i, c := range changes {
		c.ID, c.User = fmt.Sprint(i), fmt.Sprint(i)
	}
	store, err := report.Open(filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Record("s", "run", &smimesync.Report{Plan: smimesync.Plan{Full: true, Changes: changes}}, nil, now); err != nil {
		t.Fatal(err)
	}
	c := expiryChart(func(yield func(time.Time)) {
		if err := store.Expiries("s", yield); err != nil {
			t.Fatal(err)
		}
	}, now)
	want := map[int]int{0: 1, 1: 2, 51: 1}
	for i, n := range c.Counts {
		if n != want[i] {
			t.Errorf("week %d: %d, want %d", i, n, want[i])
		}
	}
	if c.Total != 4 || c.Expired != 1 || c.Later != 1 || c.Peak != 2 || c.PeakWeek != 1 {
		t.Errorf("total %d expired %d later %d peak %d in week %d", c.Total, c.Expired, c.Later, c.Peak, c.PeakWeek)
	}
	if len(c.Bars) != Weeks || c.Bars[1].BarH != plotH || c.Bars[0].BarH != plotH/2 || c.Bars[2].BarH != 0 {
		t.Errorf("bars: %+v", c.Bars[:3])
	}
	if !strings.Contains(c.Desc(), "4 users lose their last usable certificate") {
		t.Errorf("desc: %s", c.Desc())
	}
	if e := expiryChart(nil, now); e.Total != 0 || len(e.YTicks) != 2 || !strings.HasPrefix(e.Desc(), "No user") {
		t.Errorf("empty chart: %+v %s", e.YTicks, e.Desc())
	}
}

func TestAxisMax(t *testing.T) {
	for _, c := range []struct{ peak, top, step int }{
		{0, 1, 1}, {1, 1, 1}, {5, 5, 1}, {6, 6, 2}, {7, 8, 2}, {11, 15, 5}, {23, 25, 5}, {26, 30, 10}, {480, 500, 100}, {1234, 1500, 500},
	} {
		if top, step := axisMax(c.peak); top != c.top || step != c.step {
			t.Errorf("axisMax(%d) = %d, %d; want %d, %d", c.peak, top, step, c.top, c.step)
		}
	}
}
