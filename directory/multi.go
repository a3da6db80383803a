package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Named is a [Source] with the name [Multi] gives its entries.
type Named struct {
	// Name identifies the source (for example a forest): it is set as
	// Entry.Source and keys the source's cookie. Names must be unique and
	// not empty; renaming a source makes the next pass full.
	Name string
	// Source is the source.
	Source Source
}

// Multi is a [Source] over several named sources (several forests, or a
// forest and an LDIF file), read one after the other in one pass. Each
// entry's Source field is set to its source's name; Multi never merges
// entries: an address found in two sources is for the caller to report as
// a conflict.
//
// Multi keeps one cookie per source inside its own (versioned JSON). A
// failure in any source fails the pass, and no cookie is returned: the
// next pass starts from the previous cookies of every source again.
//
// Full passes: a pass is Full only when every source read in full. So
// that this stays true, Multi reads every source in full (nil cookies)
// when its cookie is missing, unreadable, or lists other sources, and when
// one of the sources has no delta mechanism (it returned no cookie last
// time). When a source falls back to a full pass on its own (a stale
// cookie) while others read deltas, the deletions the full one implies
// cannot be expressed in one Result: Read then returns an error wrapping
// [ErrStaleCookie], and the caller asks again with a nil cookie.
//
// Multi implements [Pruner] by handing the call to the source named by
// Entry.Source, when that source is a Pruner.
type Multi struct {
	// Sources are read in this order.
	Sources []Named
	// Logger receives Info messages about full passes; nil discards.
	Logger *slog.Logger
}

// multiCookieVersion is the version of Multi's cookie encoding.
const multiCookieVersion = 1

// multiCookie is Multi's cookie: each source's cookie by name. A source
// with no delta mechanism has a null cookie.
type multiCookie struct {
	V       int               `json:"v"`
	Kind    string            `json:"kind"`
	Sources map[string][]byte `json:"sources"`
}

// ErrMultiConfig is wrapped by the errors Multi returns for a bad list of
// sources.
var ErrMultiConfig = errors.New("directory: invalid list of sources")

func (m *Multi) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (m *Multi) check() error {
	if len(m.Sources) == 0 {
		return fmt.Errorf("%w: no sources", ErrMultiConfig)
	}
	seen := map[string]bool{}
	for i, s := range m.Sources {
		switch {
		case s.Name == "":
			return fmt.Errorf("%w: source %d has no name", ErrMultiConfig, i+1)
		case seen[s.Name]:
			return fmt.Errorf("%w: two sources are named %q", ErrMultiConfig, s.Name)
		case s.Source == nil:
			return fmt.Errorf("%w: source %q is nil", ErrMultiConfig, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// cookies returns the cookie to hand each source, all nil (a full pass)
// when p.Cookie cannot be used, with the reason.
func (m *Multi) cookies(raw []byte) (map[string][]byte, string) {
	if raw == nil {
		return nil, "no cookie"
	}
	var c multiCookie
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, "not a Multi cookie: " + err.Error()
	}
	if c.V != multiCookieVersion || c.Kind != "multi" {
		return nil, fmt.Sprintf("cookie kind %q version %d, want multi version %d", c.Kind, c.V, multiCookieVersion)
	}
	if len(c.Sources) != len(m.Sources) {
		return nil, "the list of sources changed"
	}
	for _, s := range m.Sources {
		ck, ok := c.Sources[s.Name]
		if !ok {
			return nil, fmt.Sprintf("source %q is new", s.Name)
		}
		if ck == nil {
			return nil, fmt.Sprintf("source %q has no delta mechanism: every pass is full", s.Name)
		}
	}
	return c.Sources, ""
}

// Read reads every source in order; see [Multi] for cookies and full
// passes. An error names the source it came from.
func (m *Multi) Read(ctx context.Context, p Pass, yield func(*Entry) error) (Result, error) {
	if err := m.check(); err != nil {
		return Result{}, err
	}
	in, why := m.cookies(p.Cookie)
	if in == nil {
		m.logger().Info("directory: full pass of every source", "why", why)
	}
	out := multiCookie{V: multiCookieVersion, Kind: "multi", Sources: map[string][]byte{}}
	var full, delta []string
	for _, s := range m.Sources {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		name := s.Name
		res, err := s.Source.Read(ctx, Pass{Cookie: in[name]}, func(e *Entry) error {
			e.Source = name
			return yield(e)
		})
		if err != nil {
			return Result{}, &SourceError{Source: name, Err: err}
		}
		out.Sources[name] = res.Cookie
		if res.Full {
			full = append(full, name)
		} else {
			delta = append(delta, name)
		}
	}
	if len(full) > 0 && len(delta) > 0 {
		return Result{}, fmt.Errorf("directory: sources %q read in full while %q read deltas: %w", full, delta, ErrStaleCookie)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Result{}, err
	}
	return Result{Cookie: b, Full: len(delta) == 0}, nil
}

// SourceError is an error from one of [Multi]'s sources.
type SourceError struct {
	// Source is the source's name.
	Source string
	// Err is its error.
	Err error
}

// Error implements error.
func (e *SourceError) Error() string { return fmt.Sprintf("directory: source %q: %v", e.Source, e.Err) }

// Unwrap returns the source's error.
func (e *SourceError) Unwrap() error { return e.Err }

// Prune hands the call to the source named e.Source. It fails, wrapping
// [errors.ErrUnsupported], when that source cannot prune.
func (m *Multi) Prune(ctx context.Context, e *Entry, attr string, values [][]byte) error {
	if e == nil {
		return errors.New("directory: prune: nil entry")
	}
	for _, s := range m.Sources {
		if s.Name != e.Source {
			continue
		}
		pr, ok := s.Source.(Pruner)
		if !ok {
			return &SourceError{Source: s.Name, Err: fmt.Errorf("cannot remove values from %s: %w", e.DN, errors.ErrUnsupported)}
		}
		if err := pr.Prune(ctx, e, attr, values); err != nil {
			return &SourceError{Source: s.Name, Err: err}
		}
		return nil
	}
	return fmt.Errorf("%w: entry %s names source %q, which is not in the list", ErrMultiConfig, e.DN, e.Source)
}

// Identity names the sources in order, each by its name, Go type and (when
// it has one) its own Identity: a saved plan made over one set of sources
// is not applied over another (see smimesync.Identifier).
func (m *Multi) Identity() string {
	var b strings.Builder
	for i, s := range m.Sources {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s=%T", s.Name, s.Source)
		if id, ok := s.Source.(interface{ Identity() string }); ok {
			b.WriteString(" " + id.Identity())
		}
	}
	return b.String()
}
