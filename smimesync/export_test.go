package smimesync

import "os"

// SpillFile is the plan's temporary file of values to write, for the
// tests: nil until a write had values.
func SpillFile(p *Plan) *os.File {
	p.spill.mu.Lock()
	defer p.spill.mu.Unlock()
	return p.spill.f
}

// MemoryStateDecodes is how many times m decoded its saved snapshot whole
// (Load, and its views once per saved version), for the tests.
func MemoryStateDecodes(m *MemoryState) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.decodes
}

// WithoutWrites is s without the count of writes a StateView's Header
// notes in it, for comparing headers.
func WithoutWrites(s *Snapshot) *Snapshot {
	c := *s
	c.writes = 0
	return &c
}
