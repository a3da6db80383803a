package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// termSafe returns s with every character that a terminal would act on,
// rather than show, escaped as Go escapes it in a quoted string (\x1b,
// \t, \u202e): control characters (ANSI escape sequences, carriage
// returns, tabs that would break a table's columns), Unicode format
// characters such as the bidirectional overrides, other non-printable
// characters, and bytes that are not UTF-8 (\xff). Printable text,
// backslashes included, is left as it is.
//
// Everything the text output shows that came from the directory, a
// certificate or the cloud (users, subjects, issuers, e-mail addresses,
// DNs, reasons and error text) goes through it: a certificate's subject
// must not be able to rewrite the screen. JSON output needs nothing
// (encoding/json escapes control characters; it leaves U+202E, which a
// JSON reader takes as data).
func termSafe(s string) string {
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

// termSafeAll applies termSafe to each string.
func termSafeAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = termSafe(s)
	}
	return out
}
