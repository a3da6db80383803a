package ldapsource

import "time"

// SetNow replaces the source's clock (tests of FullPassEvery).
func SetNow(s *Source, now func() time.Time) { s.now = now }
