package testclock

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseShift(t *testing.T) {
	ref := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", ref},
		{"+5y", time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"5y", time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"-2y", time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"-730d", ref.AddDate(0, 0, -730)},
		{"43800h", ref.Add(43800 * time.Hour)},
		{"+90m", ref.Add(90 * time.Minute)},
		{"-1h30m", ref.Add(-90 * time.Minute)},
	} {
		s, err := ParseShift(tc.in)
		if err != nil {
			t.Errorf("ParseShift(%q): %v", tc.in, err)
			continue
		}
		if got := s.Apply(ref); !got.Equal(tc.want) {
			t.Errorf("ParseShift(%q).Apply(%s) = %s, want %s", tc.in, ref, got, tc.want)
		}
	}
	for _, bad := range []string{"5", "+y", "5 years", "1.5y", "+-2y", "tomorrow", "5w"} {
		if _, err := ParseShift(bad); err == nil {
			t.Errorf("ParseShift(%q) accepted a bad shift", bad)
		}
	}
}

// TestNowHonoursShift runs this test binary again with the variable set
// and checks, in the child, that Now is shifted: it fails if Now ignores
// the environment.
func TestNowHonoursShift(t *testing.T) {
	if want := os.Getenv("TESTCLOCK_CHILD_WANT"); want != "" {
		d, err := time.ParseDuration(want)
		if err != nil {
			t.Fatal(err)
		}
		got := time.Until(Now())
		if diff := got - d; diff < -time.Minute || diff > time.Minute {
			t.Fatalf("%s=%q: Now is %s from the real clock, want about %s", EnvVar, os.Getenv(EnvVar), got, d)
		}
		return
	}
	for _, tc := range []struct {
		shift string
		want  time.Duration // approximate
	}{
		{"+5y", time.Until(time.Now().AddDate(5, 0, 0))},
		{"-2y", time.Until(time.Now().AddDate(-2, 0, 0))},
		{"-730d", -730 * 24 * time.Hour},
		{"43800h", 43800 * time.Hour},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNowHonoursShift$", "-test.count=1")
		cmd.Env = append(os.Environ(), EnvVar+"="+tc.shift, "TESTCLOCK_CHILD_WANT="+tc.want.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shift %s: %v\n%s", tc.shift, err, out)
		}
	}
	// A bad value fails loudly.
	cmd := exec.Command(os.Args[0], "-test.run=^TestNowHonoursShift$", "-test.count=1")
	cmd.Env = append(os.Environ(), EnvVar+"=soon", "TESTCLOCK_CHILD_WANT=1h")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("%s=soon: the child passed; want a panic naming the variable:\n%s", EnvVar, out)
	} else if want := "testclock: " + EnvVar; !strings.Contains(string(out), want) {
		t.Errorf("%s=soon: output lacks %q:\n%s", EnvVar, want, out)
	}
}
