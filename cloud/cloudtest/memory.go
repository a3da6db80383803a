// Package cloudtest provides an in-memory [cloud.Sink] for tests of code that
// publishes certificates, such as the Syncer. It is not for production use.
package cloudtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// Kind is the [cloud.Recipient.Kind] of recipients a [MemorySink] finds.
const Kind = "MemoryRecipient"

// ErrInjected is what a write fails with after FailWrites with a nil error.
var ErrInjected = errors.New("cloudtest: injected write failure")

// Write is one call of [MemorySink.Write], as the sink received it.
type Write struct {
	// Addr is the recipient's address (its ID), lower-cased.
	Addr string
	// Certificates is what the caller asked to write (a copy).
	Certificates cloud.Certificates
	// Err is what Write returned: nil for a write that was stored.
	Err error
}

// Calls counts the calls a [MemorySink] received.
type Calls struct {
	Find, Current, Write int
}

// MemorySink is a [cloud.Sink] for tests. Like [cloud.FileSink] it keys
// recipients by [cloud.PrimaryAddress] and treats every address as an
// existing, writable recipient carrying nothing, unless told otherwise with
// [MemorySink.SetReadOnly] or [MemorySink.SetMissing]. It records every
// write, can fail writes on demand ([MemorySink.FailWrites],
// [MemorySink.SetWriteHook]) and can refuse to read back
// ([MemorySink.SetUnreadable]), as Exchange Online may.
//
// All values going in or out are copied. A MemorySink is safe for
// concurrent use. Make one with [NewMemorySink].
type MemorySink struct {
	mu         sync.Mutex
	recipients map[string]cloud.Certificates
	readOnly   map[string]string
	missing    map[string]bool
	failures   map[string]*failure
	hook       func(addr string, c cloud.Certificates) error
	unreadable bool
	writes     []Write
	calls      Calls
}

type failure struct {
	n   int
	err error
}

// NewMemorySink returns an empty sink: every address is a writable
// recipient carrying nothing.
func NewMemorySink() *MemorySink {
	return &MemorySink{
		recipients: map[string]cloud.Certificates{},
		readOnly:   map[string]string{},
		missing:    map[string]bool{},
		failures:   map[string]*failure{},
	}
}

func key(addr string) string { return strings.ToLower(strings.TrimSpace(addr)) }

// Seed sets what the recipient at addr carries now, without recording a
// write.
func (s *MemorySink) Seed(addr string, c cloud.Certificates) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recipients[key(addr)] = clone(c)
}

// SetReadOnly marks the recipient at addr as not writable with reason (an
// empty reason makes it writable again): Find reports the reason in
// Recipient.ReadOnly, and Write returns a [*cloud.NotWritableError].
func (s *MemorySink) SetReadOnly(addr, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.readOnly, key(addr))
		return
	}
	s.readOnly[key(addr)] = reason
}

// SetMissing makes Find answer [cloud.ErrNotFound] for entries filed under
// addr (or, with missing false, find them again).
func (s *MemorySink) SetMissing(addr string, missing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if missing {
		s.missing[key(addr)] = true
	} else {
		delete(s.missing, key(addr))
	}
}

// SetUnreadable makes Current fail with [cloud.ErrUnreadable] (when
// unreadable is true), as a sink that cannot decode its read-back does.
func (s *MemorySink) SetUnreadable(unreadable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unreadable = unreadable
}

// FailWrites makes the next n writes to addr fail with err (with
// [ErrInjected] when err is nil), without storing anything. A later call
// replaces an earlier one for the same address; n <= 0 clears it.
func (s *MemorySink) FailWrites(addr string, n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.failures, key(addr))
		return
	}
	if err == nil {
		err = ErrInjected
	}
	s.failures[key(addr)] = &failure{n: n, err: err}
}

// SetWriteHook sets a function called on each Write that passed the
// read-only and FailWrites checks, before it is stored; an error from it is
// returned by Write and nothing is stored. The hook runs with the sink
// locked: it must not call the sink. nil removes it.
func (s *MemorySink) SetWriteHook(hook func(addr string, c cloud.Certificates) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// Get returns what the recipient at addr carries, and whether anything was
// ever seeded or written for it.
func (s *MemorySink) Get(addr string) (cloud.Certificates, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.recipients[key(addr)]
	return clone(c), ok
}

// Writes returns every Write call so far, in order, failed ones included
// (with Err set).
func (s *MemorySink) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Write, len(s.writes))
	for i, w := range s.writes {
		w.Certificates = clone(w.Certificates)
		out[i] = w
	}
	return out
}

// WriteCount returns how many writes to addr were stored (failed ones are
// not counted).
func (s *MemorySink) WriteCount(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.writes {
		if w.Addr == key(addr) && w.Err == nil {
			n++
		}
	}
	return n
}

// Calls returns how many times each method was called.
func (s *MemorySink) Calls() Calls {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Find returns the recipient filed under the entry's
// [cloud.PrimaryAddress], or an error wrapping [cloud.ErrNotFound] when the
// entry has no address or the address was marked missing.
func (s *MemorySink) Find(ctx context.Context, entry *directory.Entry) (*cloud.Recipient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.Find++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, errors.New("cloudtest: Find: nil entry")
	}
	addr := cloud.PrimaryAddress(entry)
	if addr == "" {
		return nil, fmt.Errorf("cloudtest: %s has no address: %w", entry.DN, cloud.ErrNotFound)
	}
	if s.missing[addr] {
		return nil, fmt.Errorf("cloudtest: no recipient %s for %s: %w", addr, entry.DN, cloud.ErrNotFound)
	}
	return &cloud.Recipient{ID: addr, Name: addr, Kind: Kind, ReadOnly: s.readOnly[addr]}, nil
}

// Current returns what the recipient carries, or an error wrapping
// [cloud.ErrUnreadable] after SetUnreadable(true).
func (s *MemorySink) Current(ctx context.Context, r *cloud.Recipient) (cloud.Certificates, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.Current++
	if err := ctx.Err(); err != nil {
		return cloud.Certificates{}, err
	}
	if r == nil {
		return cloud.Certificates{}, errors.New("cloudtest: Current: nil recipient")
	}
	if s.unreadable {
		return cloud.Certificates{}, fmt.Errorf("cloudtest: %s: %w", r.ID, cloud.ErrUnreadable)
	}
	return clone(s.recipients[key(r.ID)]), nil
}

// Write stores c as what the recipient carries, unless the recipient is
// read-only (a [*cloud.NotWritableError]), a FailWrites count is pending
// (its error, as given), or the write hook fails (its error, as given).
// Every call is recorded in Writes.
func (s *MemorySink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.Write++
	if r == nil {
		return errors.New("cloudtest: Write: nil recipient")
	}
	addr := key(r.ID)
	err := s.write(ctx, addr, c)
	s.writes = append(s.writes, Write{Addr: addr, Certificates: clone(c), Err: err})
	return err
}

func (s *MemorySink) write(ctx context.Context, addr string, c cloud.Certificates) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if reason := s.readOnly[addr]; reason != "" {
		return &cloud.NotWritableError{Recipient: addr, Reason: reason}
	}
	if f := s.failures[addr]; f != nil {
		f.n--
		if f.n <= 0 {
			delete(s.failures, addr)
		}
		return f.err
	}
	if s.hook != nil {
		if err := s.hook(addr, clone(c)); err != nil {
			return err
		}
	}
	s.recipients[addr] = clone(c)
	return nil
}

func clone(c cloud.Certificates) cloud.Certificates {
	return cloud.Certificates{
		UserCertificate:      cloneValues(c.UserCertificate),
		UserSMIMECertificate: cloneValues(c.UserSMIMECertificate),
	}
}

func cloneValues(v [][]byte) [][]byte {
	if v == nil {
		return nil
	}
	out := make([][]byte, len(v))
	for i, b := range v {
		out[i] = bytes.Clone(b)
	}
	return out
}
