package winsvc

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIsPasswordlessAccount(t *testing.T) {
	for account, want := range map[string]bool{
		"": true, "LocalSystem": true, `NT AUTHORITY\NetworkService`: true, `NT AUTHORITY\LOCAL SERVICE`: true,
		`NT SERVICE\smimesync`: true, `CONTOSO\smimesync-gmsa$`: true, `smimesync-gmsa$@contoso.com`: false,
		`CONTOSO\svc-smime`: false, "svc-smime@contoso.com": false, `.\localuser`: false,
	} {
		if got := IsPasswordless(account); got != want {
			t.Errorf("%q: %v, want %v", account, got, want)
		}
	}
}

// TestDefaultRecovery: restart on every failure, never in a tight loop,
// the delays growing, failures counted anew after a day, and a service
// that stops with an error counting as failed.
func TestDefaultRecovery(t *testing.T) {
	p := DefaultRecovery()
	if len(p.Restarts) < 3 {
		t.Errorf("%d restart actions: the Service Control Manager takes up to 3 kinds, the last one repeating", len(p.Restarts))
	}
	for i, d := range p.Restarts {
		if d < 30*time.Second || i > 0 && d < p.Restarts[i-1] {
			t.Errorf("restart %d after %s: under 30 s, or sooner than the one before", i+1, d)
		}
	}
	if p.ResetAfter != 24*time.Hour || !p.OnNonCrashFailures {
		t.Errorf("reset after %s, on non-crash failures %v", p.ResetAfter, p.OnNonCrashFailures)
	}
}

// fakeEventLog records the events an EventLogHandler writes.
type fakeEventLog struct{ events []string }

func (f *fakeEventLog) add(kind string, eid uint32, msg string) error {
	f.events = append(f.events, kind+" "+string(rune('0'+eid))+" "+msg)
	return nil
}
func (f *fakeEventLog) Info(eid uint32, msg string) error    { return f.add("info", eid, msg) }
func (f *fakeEventLog) Warning(eid uint32, msg string) error { return f.add("warning", eid, msg) }
func (f *fakeEventLog) Error(eid uint32, msg string) error   { return f.add("error", eid, msg) }

func TestEventLogHandler(t *testing.T) {
	f := &fakeEventLog{}
	log := slog.New(NewEventLogHandler(f, EventLogLevel("info")))
	log.Debug("not written")
	log.Info("service started", "sinks", 2, "interval", 60*time.Second)
	sinkLog := log.With("sink", "exchange").WithGroup("pass")
	sinkLog.Warn("pass stopped by shutdown; state saved", "kind", "delta", "err", errors.New(`context canceled: "quoted" and spaced`))
	log.Error("pass failed", "sink", "graph", "dn", "CN=Bob Example,OU=Staff,DC=contoso,DC=com", "code", "sink-auth")
	want := []string{
		"info 1 service started\r\nsinks=2\r\ninterval=1m0s",
		"warning 2 pass stopped by shutdown; state saved\r\nsink=exchange\r\npass.kind=delta\r\npass.err=\"context canceled: \\\"quoted\\\" and spaced\"",
		"error 3 pass failed\r\nsink=graph\r\ndn=\"CN=Bob Example,OU=Staff,DC=contoso,DC=com\"\r\ncode=sink-auth",
	}
	if !slices.Equal(f.events, want) {
		t.Errorf("events:\n%q\nwant\n%q", f.events, want)
	}

	// Levels: warn and error configured keep info out; debug never goes.
	for level, enabled := range map[string][]slog.Level{
		"debug": {slog.LevelInfo, slog.LevelWarn, slog.LevelError}, "info": {slog.LevelInfo, slog.LevelWarn, slog.LevelError},
		"warn": {slog.LevelWarn, slog.LevelError}, "error": {slog.LevelError},
	} {
		h := NewEventLogHandler(f, EventLogLevel(level))
		var got []slog.Level
		for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
			if h.Enabled(context.Background(), l) {
				got = append(got, l)
			}
		}
		if !slices.Equal(got, enabled) {
			t.Errorf("log.level %s: enabled %v, want %v", level, got, enabled)
		}
	}

	// A message too long for the Event Log is cut, at a character, and
	// says so.
	f.events = nil
	log.Info(strings.Repeat("é", MaxEventMessage))
	got := strings.TrimPrefix(f.events[0], "info 1 ")
	if len(got) > MaxEventMessage || !strings.HasSuffix(got, "(cut: the message was too long for the Event Log)") || !strings.HasPrefix(got, "éé") {
		t.Errorf("a long message: %d bytes, ends %q", len(got), got[max(0, len(got)-80):])
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Error("a long message was cut inside a character")
	}
}
