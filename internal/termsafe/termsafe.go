// Package termsafe escapes text for a terminal: what smimesync's text
// output shows that came from the directory, a certificate or the cloud
// goes through it, so that a certificate's subject cannot rewrite the
// screen.
package termsafe

import (
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with every character that a terminal would act on,
// rather than show, escaped as Go escapes it in a quoted string (\x1b,
// \t, \u202e): control characters (ANSI escape sequences, carriage
// returns, tabs that would break a table's columns), Unicode format
// characters such as the bidirectional overrides, other non-printable
// characters, and bytes that are not UTF-8 (\xff). Printable text,
// backslashes included, is left as it is.
//
// Everything the text output shows that came from the directory, a
// certificate or the cloud (users, subjects, issuers, e-mail addresses,
// DNs, reasons and error text) goes through it. JSON output needs nothing
// (encoding/json escapes control characters; it leaves U+202E, which a
// JSON reader takes as data).
func String(s string) string {
	i := 0
	if utf8.ValidString(s) {
		if i = strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }); i < 0 {
			return s
		}
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for s = s[i:]; s != ""; {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[0])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[0])&0xf, 16))
		case unicode.IsPrint(r):
			b.WriteString(s[:n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[n:]
	}
	return b.String()
}

// All applies String to each string.
func All(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = String(s)
	}
	return out
}

// Hostile is what a directory user can put in a name: a screen clear and
// cursor move, a window-title escape, a carriage return, a tab that breaks
// columns, a right-to-left override, and a byte that is not UTF-8. The
// text output tests of the packages that render (report, inspect, check,
// the example binary) feed it in and check the output with Unsafe.
const Hostile = "mallory\x1b[2J\x1b[1;1H\x1b]0;pwned\x07\rroot\tx\u202ecod.exe\xff"

// Unsafe reports the first byte sequence in out that a terminal would
// act on: a control character other than newline, U+202E, or invalid
// UTF-8; "" when there is none.
func Unsafe(out string) string {
	for i, r := range out {
		switch {
		case r == '\n':
		case r < 0x20 || r == 0x7f:
			return out[max(0, i-10):min(len(out), i+10)]
		case r == '\u202e':
			return "U+202E"
		case r == 0xfffd && !strings.HasPrefix(out[i:], "\ufffd"):
			return "invalid UTF-8"
		}
	}
	return ""
}

// ErrWriter passes writes to W until one fails, then keeps that error in
// Err and writes nothing more: a renderer that writes many lines checks
// once, at the end.
type ErrWriter struct {
	W   io.Writer
	Err error
}

// Write writes b to W unless an earlier write failed.
func (e *ErrWriter) Write(b []byte) (int, error) {
	if e.Err != nil {
		return 0, e.Err
	}
	n, err := e.W.Write(b)
	e.Err = err
	return n, err
}
