package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// sampleEvery is how often a pass's memory is sampled: often enough to
// catch a peak of a few tens of milliseconds, rarely enough not to weigh on
// the pass (a sample reads /proc/self/status and one runtime metric, and
// allocates nothing).
const sampleEvery = 10 * time.Millisecond

// heapMetric is the Go heap the sampler reads: the bytes of the heap's
// objects, live ones and dead ones the collector has not yet freed (what
// the heap holds at the moment, which /gc/heap/live:bytes, updated only at
// the end of a collection, does not say).
const heapMetric = "/memory/classes/heap/objects:bytes"

// memPeaks is what a memSampler saw.
type memPeaks struct {
	// Anon is the highest RssAnon: the process's anonymous resident
	// memory (Go heap, stacks, the runtime's own), which excludes the
	// pages of files it maps. 0 when unknown.
	Anon uint64
	// RSS is the highest VmRSS sampled, and FileAtPeak the RssFile of
	// that sample: how much of it was file-backed pages (the program's
	// code, a mapped bbolt file). 0 when unknown.
	RSS, FileAtPeak uint64
	// Heap is the highest heapMetric.
	Heap uint64
	// Samples counts the samples taken.
	Samples int64
	// Status says whether /proc/self/status gave RssAnon (Linux 4.5+).
	Status bool
}

// from says how the peaks were measured, for a passOutcome.
func (p memPeaks) from() string {
	anon := "anon RSS and file RSS unknown (no RssAnon in /proc/self/status)"
	if p.Status {
		anon = fmt.Sprintf("anon RSS the highest RssAnon of /proc/self/status, file RSS its RssFile when VmRSS was highest, sampled every %d ms and at the end of the pass (%d samples)",
			sampleEvery.Milliseconds(), p.Samples)
	}
	return anon + "; heap the highest runtime/metrics " + heapMetric + ", sampled likewise"
}

// memSampler samples the process's memory from a goroutine of its own
// until stop: the peaks of anonymous RSS and of the Go heap, which VmHWM
// does not give (it counts the pages of mapped files, such as the bbolt
// state file, with the process's own memory). A sample allocates nothing,
// so that the pass's allocation counters stay its own.
type memSampler struct {
	status *os.File // /proc/self/status; nil when it cannot be read
	buf    []byte
	metric []metrics.Sample

	peaks   memPeaks     // the goroutine's until done is closed; then stop's
	samples atomic.Int64 // peaks.Samples, readable while the goroutine runs

	quit, done chan struct{}
	once       sync.Once

	// profile, when not empty, is where the heap profile is written each
	// time the heap passes 1.1 times what it was at the last profile
	// written (and at the end): the profile of the pass's highest heap,
	// as of the collection before it. Writing it allocates.
	profile    string
	profiledAt uint64
	profileErr error
}

// startSampler takes a first sample and starts sampling every d; with a
// profile path, it also writes heap profiles there (see memSampler).
func startSampler(d time.Duration, profile string) *memSampler {
	s := &memSampler{
		profile: profile,
		buf:     make([]byte, 16<<10),
		metric:  []metrics.Sample{{Name: heapMetric}},
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if f, err := os.Open("/proc/self/status"); err == nil {
		s.status = f
	}
	s.sample()
	s.peaks.Status = s.status != nil && s.peaks.Anon > 0
	go s.run(d)
	return s
}

func (s *memSampler) run(d time.Duration) {
	defer close(s.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.sample()
		}
	}
}

// stop ends the sampling, waiting for the goroutine to return, takes a
// last sample (a pass shorter than the interval is not missed) and returns
// the peaks. Calls after the first return the same peaks.
func (s *memSampler) stop() memPeaks {
	s.once.Do(func() {
		close(s.quit)
		<-s.done
		s.sample()
		if s.status != nil {
			_ = s.status.Close()
		}
	})
	return s.peaks
}

// Fields of /proc/self/status, in kB.
var (
	fieldVmRSS   = []byte("VmRSS:")
	fieldRssAnon = []byte("RssAnon:")
	fieldRssFile = []byte("RssFile:")
	unitKB       = []byte(" kB")
)

// sample reads the memory now and keeps the peaks.
func (s *memSampler) sample() {
	s.peaks.Samples = s.samples.Add(1)
	metrics.Read(s.metric)
	if v := s.metric[0].Value; v.Kind() == metrics.KindUint64 {
		s.peaks.Heap = max(s.peaks.Heap, v.Uint64())
		if s.profile != "" && s.profileErr == nil && v.Uint64() > s.profiledAt+s.profiledAt/10 {
			s.profiledAt = v.Uint64()
			s.profileErr = writeHeapProfile(s.profile)
		}
	}
	if s.status == nil {
		return
	}
	n, _ := s.status.ReadAt(s.buf, 0) // io.EOF: the whole file, shorter than buf
	rss, anon, file := statusKB(s.buf[:n])
	s.peaks.Anon = max(s.peaks.Anon, anon)
	if rss > s.peaks.RSS {
		s.peaks.RSS, s.peaks.FileAtPeak = rss, file
	}
}

// statusKB returns VmRSS, RssAnon and RssFile, in bytes, from the text of
// /proc/self/status (0 for what it lacks), without allocating.
func statusKB(b []byte) (rss, anon, file uint64) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		switch {
		case bytes.HasPrefix(line, fieldVmRSS):
			rss = kB(line[len(fieldVmRSS):])
		case bytes.HasPrefix(line, fieldRssAnon):
			anon = kB(line[len(fieldRssAnon):])
		case bytes.HasPrefix(line, fieldRssFile):
			file = kB(line[len(fieldRssFile):])
		}
	}
	return rss, anon, file
}

// kB parses "   1234 kB" as bytes; 0 if it is not that.
func kB(v []byte) uint64 {
	v = bytes.TrimSpace(v)
	num, ok := bytes.CutSuffix(v, unitKB)
	if !ok || len(num) == 0 {
		return 0
	}
	var n uint64
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n << 10
}

// writeHeapProfile writes the heap profile to path, replacing the last.
func writeHeapProfile(path string) error { return writeProfile(path, "heap") }

// writeProfile writes the runtime/pprof profile of that name (heap,
// allocs) to path, replacing what was there.
func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
