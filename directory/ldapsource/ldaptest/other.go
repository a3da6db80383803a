//go:build !unix

package ldaptest

import "testing"

// Samba skips or fails t: the harness runs servers on Unix only.
func Samba(t testing.TB) *Server {
	t.Helper()
	SkipOrFail(t, "ldaptest: the directory servers run on Unix only")
	return nil
}

// Slapd skips or fails t: the harness runs servers on Unix only.
func Slapd(t testing.TB) *Server {
	t.Helper()
	SkipOrFail(t, "ldaptest: the directory servers run on Unix only")
	return nil
}

// StopSamba does nothing outside Unix.
func StopSamba() error { return nil }

// processAlive is always true here: leftovers are never removed.
func processAlive(int) bool { return true }

// pidNamespace is empty here.
func pidNamespace() string { return "" }
