package report

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/smimesync"
)

// progressEvery is how often the status line is redrawn at most.
const progressEvery = 100 * time.Millisecond

// A Progress draws a single updating status line ("file: planning, 1234
// entries read") on a terminal while Syncers plan and apply, from their
// [smimesync.Syncer.Progress] callbacks (see Hook). When the output is not
// a terminal (piped, redirected, a service's journal) it draws nothing at
// all. A nil *Progress draws nothing either. Its methods may be called
// from several goroutines.
type Progress struct {
	w  io.Writer
	on bool

	mu    sync.Mutex
	shown string    // the line on screen, "" when none
	drawn time.Time // when it was drawn
}

// NewProgress returns a Progress that draws on w when isTerminal(w)
// says w is a terminal. A nil isTerminal asks whether w is an *os.File
// that is a terminal.
func NewProgress(w io.Writer, isTerminal func(io.Writer) bool) *Progress {
	if isTerminal == nil {
		isTerminal = terminalWriter
	}
	return &Progress{w: w, on: isTerminal(w)}
}

// terminalWriter reports whether w is a file that is a terminal.
func terminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Hook returns the [smimesync.Syncer.Progress] callback for the Syncer
// of sink, or nil when nothing is drawn (so that the Syncer does not even
// call it). The line is redrawn at most every 100 ms, except for the
// first entry and the last write.
func (p *Progress) Hook(sink string) func(smimesync.Progress) {
	if p == nil || !p.on {
		return nil
	}
	sink = termsafe.String(sink)
	return func(pr smimesync.Progress) {
		var line string
		last := false
		switch {
		case pr.Stage == smimesync.StageApply && pr.Total > 0:
			line = fmt.Sprintf("%s: applying, %d of %d writes (%d%%)", sink, pr.Done, pr.Total, 100*pr.Done/pr.Total)
			last = pr.Done == pr.Total
		case pr.Stage == smimesync.StageApply:
			line = fmt.Sprintf("%s: applying, %d writes", sink, pr.Done)
		default:
			line = fmt.Sprintf("%s: planning, %s read", sink, plural(pr.Done, "entry"))
		}
		p.set(line, last || pr.Done == 1)
	}
}

// set shows line, at most every progressEvery unless force.
func (p *Progress) set(line string, force bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(p.drawn) < progressEvery {
		return
	}
	p.shown, p.drawn = line, now
	p.draw()
}

// draw writes the current line over the old one. Callers hold p.mu.
func (p *Progress) draw() {
	// \r goes back to the start of the line, ESC[K erases to its end.
	fmt.Fprintf(p.w, "\r\x1b[K%s", p.shown)
}

// Clear removes the status line, at the end of a pass.
func (p *Progress) Clear() {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown != "" {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = ""
	}
}

// Writer returns w wrapped so that log lines written to the same terminal
// do not run into the status line: it is erased before each write and
// drawn again after. When nothing is drawn, Writer returns w itself.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if p == nil || !p.on {
		return w
	}
	return progressWriter{p: p, w: w}
}

type progressWriter struct {
	p *Progress
	w io.Writer
}

func (pw progressWriter) Write(b []byte) (int, error) {
	pw.p.mu.Lock()
	defer pw.p.mu.Unlock()
	if pw.p.shown != "" {
		fmt.Fprint(pw.p.w, "\r\x1b[K")
	}
	n, err := pw.w.Write(b)
	if pw.p.shown != "" {
		pw.p.draw()
	}
	return n, err
}
