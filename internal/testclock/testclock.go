// Package testclock is the one clock of the module's tests: the real clock
// shifted by the SMIMESYNC_TEST_CLOCK_SHIFT environment variable.
//
// Every test helper that makes certificate data (validity, the signing time
// of a CMS blob) reads Now from here, and the code under test is given the
// same clock (Policy.Now, Syncer.Now, the revocation Checker's Now, the
// example binary's clock hook). Running the whole suite with
//
//	SMIMESYNC_TEST_CLOCK_SHIFT=+5y go test ./...
//
// then shows that no test depends on today's date. Infrastructure that Go
// checks against the real clock (the TLS certificates of the test
// directory servers and httptest servers, the tokens of the auth
// emulator) stays on time.Now: shifting those would only break TLS.
//
// The shift is a sign, a number and a unit: "+5y" (calendar years),
// "-730d" (days), or any time.ParseDuration value ("43800h", "-90m").
// Empty or unset means no shift. A value that cannot be read makes Now
// panic with a message naming the variable: a test run with a wrong shift
// must not silently run unshifted.
//
// Production code must not read this clock. The example binary links it
// only through internal/testpki, for its demo, which passes its own clock.
package testclock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvVar is the environment variable that shifts the test clock.
const EnvVar = "SMIMESYNC_TEST_CLOCK_SHIFT"

// Shift is a parsed clock shift: calendar years and days, then a duration.
type Shift struct {
	Years, Days int
	Duration    time.Duration
}

// Apply returns t moved by s.
func (s Shift) Apply(t time.Time) time.Time {
	return t.AddDate(s.Years, 0, s.Days).Add(s.Duration)
}

// IsZero reports whether s moves nothing.
func (s Shift) IsZero() bool { return s == Shift{} }

// ParseShift reads a shift: "" (none), "+5y", "-2y", "-730d", "43800h",
// "+1y" ... The sign is optional for years and days.
func ParseShift(v string) (Shift, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return Shift{}, nil
	}
	if unit := v[len(v)-1]; unit == 'y' || unit == 'd' {
		n, err := strconv.Atoi(v[:len(v)-1])
		if err != nil {
			return Shift{}, fmt.Errorf("%s=%q: %q is not a whole number of %s", EnvVar, v, v[:len(v)-1], map[byte]string{'y': "years", 'd': "days"}[unit])
		}
		if unit == 'y' {
			return Shift{Years: n}, nil
		}
		return Shift{Days: n}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return Shift{}, fmt.Errorf("%s=%q: want +Ny, -Nd or a Go duration such as 43800h: %w", EnvVar, v, err)
	}
	return Shift{Duration: d}, nil
}

var current = sync.OnceValues(func() (Shift, error) {
	return ParseShift(os.Getenv(EnvVar))
})

// Current returns the shift the environment asks for. It panics when the
// variable cannot be read (see the package documentation).
func Current() Shift {
	s, err := current()
	if err != nil {
		panic("testclock: " + err.Error())
	}
	return s
}

// Now returns the test clock's time: time.Now shifted by [EnvVar]. Its
// signature fits Policy.Now, Syncer.Now and the revocation Checker's Now.
func Now() time.Time {
	return Current().Apply(time.Now())
}
