package main

import "time"

// clock is the binary's clock: the policy's (certificate validity, chain
// validation), the revocation checker's, the Syncer's, the report's, the
// service's and the demo's. It is time.Now. The tests of this package set
// it to the test clock (internal/testclock) in clock_test.go, so that the
// certificates they make and the code judging them agree on the date; the
// binary never reads it from the environment or a flag.
var clock = time.Now
