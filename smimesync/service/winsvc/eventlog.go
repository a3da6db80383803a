package winsvc

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"
)

// EventWriter is what the Event Log handler needs of the Windows Event
// Log: *eventlog.Log (golang.org/x/sys/windows/svc/eventlog) has these
// methods; tests fake them.
type EventWriter interface {
	Info(eid uint32, msg string) error
	Warning(eid uint32, msg string) error
	Error(eid uint32, msg string) error
}

// The event IDs an EventLogHandler writes under (source smimesync, log
// Application): one per level, so that a filter or a forwarding rule can
// pick errors by ID. [SCM.Install] registers the source with
// EventCreate.exe's message file, which takes IDs 1 to 1000.
const (
	EventIDInfo    = 1
	EventIDWarning = 2
	EventIDError   = 3
)

// MaxEventMessage bounds an event's text: ReportEvent refuses strings
// longer than 31,839 characters. Longer messages are cut, and say so.
const MaxEventMessage = 31000

// EventLogHandler is a slog.Handler that writes each record as one event:
// the message on the first line, then its attributes as key=value, one
// per line (groups as prefix.key), formatted as slog's text handler
// formats them. The record's time is the event's own; its level picks the
// event type (info, warning, error) and ID.
type EventLogHandler struct {
	w     EventWriter
	level slog.Leveler
	fmt   *eventFormatter
	inner slog.Handler // formats the attributes into fmt.buf
}

// eventFormatter is the buffer an EventLogHandler and the handlers
// derived from it (WithAttrs, WithGroup) format into, one record at a
// time.
type eventFormatter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewEventLogHandler returns a handler writing records at level and above
// to w.
func NewEventLogHandler(w EventWriter, level slog.Leveler) *EventLogHandler {
	f := &eventFormatter{}
	inner := slog.NewTextHandler(&f.buf, &slog.HandlerOptions{
		Level: slog.LevelDebug, // the outer handler filters
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &EventLogHandler{w: w, level: level, fmt: f, inner: inner}
}

// Enabled implements slog.Handler.
func (h *EventLogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// WithAttrs implements slog.Handler.
func (h *EventLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	return &c
}

// WithGroup implements slog.Handler.
func (h *EventLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}

// Handle implements slog.Handler: it writes one event.
func (h *EventLogHandler) Handle(ctx context.Context, r slog.Record) error {
	msg := h.format(ctx, r)
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Error(EventIDError, msg)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(EventIDWarning, msg)
	default:
		return h.w.Info(EventIDInfo, msg)
	}
}

// format is the event's text for r.
func (h *EventLogHandler) format(ctx context.Context, r slog.Record) string {
	h.fmt.mu.Lock()
	h.fmt.buf.Reset()
	// Only the attributes (the message goes first, on its own line);
	// the text handler cannot fail on a buffer.
	attrsOnly := slog.NewRecord(r.Time, r.Level, "", r.PC)
	r.Attrs(func(a slog.Attr) bool {
		attrsOnly.AddAttrs(a)
		return true
	})
	h.inner.Handle(ctx, attrsOnly)
	attrs := strings.TrimSpace(h.fmt.buf.String())
	h.fmt.mu.Unlock()

	var b strings.Builder
	b.WriteString(r.Message)
	for _, kv := range splitTextAttrs(attrs) {
		b.WriteString("\r\n")
		b.WriteString(kv)
	}
	return TruncateEvent(b.String())
}

// splitTextAttrs splits the text handler's "k=v k2="quoted value"" line
// into its key=value pairs: at spaces outside double quotes.
func splitTextAttrs(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ' ':
			if !quoted {
				if i > start {
					out = append(out, s[start:i])
				}
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// TruncateEvent cuts msg to MaxEventMessage bytes, at a character
// boundary, marking the cut.
func TruncateEvent(msg string) string {
	if len(msg) <= MaxEventMessage {
		return msg
	}
	const mark = "\r\n… (cut: the message was too long for the Event Log)"
	cut := MaxEventMessage - len(mark)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + mark
}

// EventLogLevel is the lowest level a service writes to the Event Log for
// a configured level ("debug", "info", "warn", "error"): the configured level, but never debug (debug records go
// to the log file only).
func EventLogLevel(level string) slog.Level {
	switch level {
	case "error":
		return slog.LevelError
	case "warn", "warning":
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
