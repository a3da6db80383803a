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

// SpillRowsStart is where the plan's first run of rows starts in its
// temporary file, for the tests: the values of its writes come before.
func SpillRowsStart(p *Plan) int64 {
	p.rows.mu.Lock()
	defer p.rows.mu.Unlock()
	return p.rows.runs[0].off
}

// SetRunRows sets how many rows a run holds, for the test t.
func SetRunRows(t interface{ Cleanup(func()) }, n int) {
	old := runRows
	runRows = n
	t.Cleanup(func() { runRows = old })
}
