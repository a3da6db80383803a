package check_test

import (
	"os"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/smimesync/check"
)

// TestWriteText: results grouped under their part's title in order, ✓ or
// ✗ with the detail, the fix or note below, and text from outside
// escaped.
func TestWriteText(t *testing.T) {
	for _, tt := range []struct {
		name   string
		checks []check.Result
		want   string
	}{
		{"none", nil, ""},
		{"ok with note", []check.Result{{Part: check.PartConfig, Check: "state", OK: true, Detail: "writable", Note: "n"}},
			"Configuration and state\n  ✓ state: writable\n      note: n\n"},
		{"parts", []check.Result{
			{Part: check.PartDirectory, Check: "ldap", OK: true},
			{Part: "exchange", Check: "token", Detail: "refused", Fix: "grant the role"},
			{Part: "exchange", Check: "ping", OK: true},
			{Part: check.PartProbe, Check: "probe bob"},
		}, "Directory\n  ✓ ldap\nSink exchange\n  ✗ token: refused\n      fix: grant the role\n  ✓ ping\nProbe (writes)\n  ✗ probe bob\n"},
		{"escaped", []check.Result{{Part: "exo\x1b[2J", Check: "c", Detail: termsafe.Hostile, Fix: "\r"}},
			"Sink exo\\x1b[2J\n  ✗ c: " + termsafe.String(termsafe.Hostile) + "\n      fix: \\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := (check.Report{Checks: tt.checks}).WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tt.want)
			}
			if bad := termsafe.Unsafe(b.String()); bad != "" {
				t.Errorf("prints %q raw", bad)
			}
		})
	}
}

// A program that checks a setup prints the results as `smimesync check`
// does.
func ExampleReport_WriteText() {
	c := &check.Checker{Part: check.PartConfig}
	c.OK("configuration", "smimesync.yaml loads")
	c.Note("state", "no state.path", "every run is a first run; set state.path to remember what was published")
	c.Part = "exchange"
	c.Fail("token", "the token has no Exchange.ManageAsApp role", "grant the app the role, then run check again")
	if err := c.Report().WriteText(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// Configuration and state
	//   ✓ configuration: smimesync.yaml loads
	//   ✓ state: no state.path
	//       note: every run is a first run; set state.path to remember what was published
	// Sink exchange
	//   ✗ token: the token has no Exchange.ManageAsApp role
	//       fix: grant the app the role, then run check again
}
