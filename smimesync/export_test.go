package smimesync

import "os"

// SpillFile is the plan's temporary file of values to write, for the
// tests: nil until a write had values.
func SpillFile(p *Plan) *os.File {
	p.spill.mu.Lock()
	defer p.spill.mu.Unlock()
	return p.spill.f
}
