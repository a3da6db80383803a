package report

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestReportDeparted: entries that left the directory with something
// published are listed apart, with what became of their values, and are
// not counted as users without a usable certificate.
func TestReportDeparted(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	left := change("b", smimesync.ActionSkip, "")
	left.Reason = smimesync.SkipDeparted
	removed := change("c", smimesync.ActionDepart, smimesync.OutcomeWritten)
	failed := change("d", smimesync.ActionDepart, smimesync.OutcomeFailed)
	failed.Error = "503 Service Unavailable"
	gone := change("e", smimesync.ActionSkip, "")
	gone.Reason, gone.Detail = smimesync.SkipDeparted, "the recipient no longer exists; the record is forgotten"
	f := &File{Sinks: []*Sink{{Sink: "x"}}}
	f.Sinks[0].merge("sync", &smimesync.Report{Plan: smimesync.Plan{Full: true, Finished: t0, Changes: []*smimesync.Change{
		change("a", smimesync.ActionUnchanged, "", "userCertificate"), left, removed, failed, gone,
	}}}, nil, t0)
	sum := Summarize(f, "report.json", t0, 30).Sinks[0]
	var got []string
	for _, d := range sum.Departed {
		got = append(got, d.ID+":"+d.Status+":"+d.Why)
	}
	want := []string{"b:left-published:", "c:removed:", "d:failed:503 Service Unavailable",
		"e:left-published:the recipient no longer exists; the record is forgotten"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("departed (-want +got):\n%s", diff)
	}
	if sum.Users != 1 || len(sum.NoUsable) != 0 || len(sum.NotPublished) != 0 {
		t.Errorf("users %d, no usable %v, not published %v; want 1 user and the departed in no other list", sum.Users, sum.NoUsable, sum.NotPublished)
	}
}
