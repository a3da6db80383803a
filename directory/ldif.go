package directory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Bounds on what [ReadLDIF] accepts. Input beyond them is refused with an
// [*LDIFError] wrapping [ErrLDIFTooLarge]: they keep a hostile or broken file
// from exhausting memory, and sit far above anything a directory holds (AD
// caps userSMIMECertificate values at 32 KiB).
const (
	// MaxLDIFLine is the longest logical line (after unfolding) ReadLDIF
	// reads: 16 MiB.
	MaxLDIFLine = 16 << 20
	// MaxLDIFEntry is the most value bytes ReadLDIF keeps for one entry
	// (DN, addresses and certificates together): 64 MiB.
	MaxLDIFEntry = 64 << 20
)

var (
	// ErrLDIFSyntax is wrapped by an [*LDIFError] for input that is not
	// LDIF: a line without a colon, bad base64, a record that does not
	// start with dn:, a continuation line with nothing to continue.
	ErrLDIFSyntax = errors.New("directory: LDIF syntax error")
	// ErrLDIFUnsupported is wrapped by an [*LDIFError] for valid RFC 2849
	// that smimesync does not read: change records (any changetype: line),
	// control: lines, values given by URL (attr:< url), versions other
	// than 1.
	ErrLDIFUnsupported = errors.New("directory: unsupported LDIF")
	// ErrLDIFTooLarge is wrapped by an [*LDIFError] for a line longer than
	// [MaxLDIFLine] or an entry larger than [MaxLDIFEntry].
	ErrLDIFTooLarge = errors.New("directory: LDIF line or entry too large")
)

// LDIFError reports where an LDIF input is bad. It wraps [ErrLDIFSyntax],
// [ErrLDIFUnsupported], [ErrLDIFTooLarge], or the reader's own error.
type LDIFError struct {
	// Path is the file's path when known (an [LDIFFile]), empty for a
	// plain reader.
	Path string
	// Line is the 1-based physical line where the offending (logical) line
	// starts.
	Line int
	// DN is the DN of the record being read, when it is known.
	DN string
	// Err is the cause.
	Err error
}

func (e *LDIFError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteByte(':')
	} else {
		b.WriteString("LDIF line ")
	}
	b.WriteString(strconv.Itoa(e.Line))
	if e.DN != "" {
		b.WriteString(" (dn ")
		b.WriteString(strconv.Quote(e.DN))
		b.WriteByte(')')
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *LDIFError) Unwrap() error { return e.Err }

// LDIFFile is a [Source] that reads an RFC 2849 LDIF content file, as
// ldifde, slapcat or ldapsearch -L write them, with [ReadLDIF]. It reads
// one record at a time: memory does not grow with the file. LDIF has no
// deltas, so every pass is full and returns no cookie.
//
// The zero value has no file to read; set Path.
type LDIFFile struct {
	// Path is the file to read.
	Path string
	// Logger receives debug messages; nil is silent.
	Logger *slog.Logger
}

// Read opens the file and yields every entry in it. A cookie in p is
// ignored: the result is always {Cookie: nil, Full: true}. Errors in the
// file are [*LDIFError] values carrying the path and line.
func (f LDIFFile) Read(ctx context.Context, p Pass, yield func(*Entry) error) (Result, error) {
	if f.Path == "" {
		return Result{}, errors.New("directory: LDIFFile has no Path")
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	file, err := os.Open(f.Path)
	if err != nil {
		return Result{}, fmt.Errorf("directory: reading LDIF: %w", err)
	}
	defer file.Close()
	if p.Cookie != nil {
		log.DebugContext(ctx, "LDIF has no deltas; reading the whole file", "path", f.Path)
	}
	start := time.Now()
	n, err := readLDIF(ctx, file, f.Path, log, yield)
	if err != nil {
		return Result{}, err
	}
	log.DebugContext(ctx, "LDIF read", "path", f.Path, "entries", n, "elapsed", time.Since(start))
	return Result{Cookie: nil, Full: true}, nil
}

// ReadLDIF reads RFC 2849 LDIF content records from r and calls yield once
// per record, in file order, holding one record in memory at a time. It
// checks ctx between records. If yield returns an error, ReadLDIF stops and
// returns it as is.
//
// What it accepts: an optional "version: 1" first line; comments (lines
// starting with "#", and their folded continuations); folded lines (a line
// starting with a space continues the previous one, the space removed); LF
// or CRLF line endings; "attr: value" (the leading spaces of the value are
// dropped), "attr:: base64"; one or more blank lines between records. Values
// are taken as the bytes they stand for: the decoded bytes of a base64
// value, the UTF-8 bytes of a plain one.
//
// What it refuses, with an [*LDIFError] naming the line: change records
// (any "changetype:" line, including "changetype: add"), "control:" lines,
// values by URL ("attr:< url"), a record whose first line is not "dn:",
// malformed lines, and input beyond [MaxLDIFLine] or [MaxLDIFEntry].
//
// Mapping to [Entry]: attribute names are compared without case and
// without options (";binary", ";range=0-*"). objectGUID (16 bytes, or a GUID
// string) gives ID through [FormatGUID]; otherwise a non-empty entryUUID is
// the ID; otherwise the ID is the DN. userPrincipalName and mail take their
// first value; proxyAddresses, userCertificate and userSMIMECertificate keep
// every value in order; "isDeleted: TRUE" sets Deleted. Other attributes
// are ignored.
func ReadLDIF(ctx context.Context, r io.Reader, yield func(*Entry) error) error {
	_, err := readLDIF(ctx, r, "", slog.New(slog.DiscardHandler), yield)
	return err
}

func readLDIF(ctx context.Context, r io.Reader, path string, log *slog.Logger, yield func(*Entry) error) (int, error) {
	lr := &ldifLines{r: bufio.NewReaderSize(r, 64<<10)}
	fail := func(line int, dn string, err error) error {
		return &LDIFError{Path: path, Line: line, DN: dn, Err: err}
	}
	count := 0
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return count, err
		}
		line, no, err := lr.next()
		if err != nil {
			return count, fail(no, "", readErr(err))
		}
		if line == nil {
			return count, nil
		}
		if len(line) == 0 {
			continue
		}
		name, value, err := parseLDIFLine(line)
		if err != nil {
			return count, fail(no, "", err)
		}
		if first && bytes.EqualFold(name, []byte("version")) {
			first = false
			if string(bytes.TrimSpace(value)) != "1" {
				return count, fail(no, "", fmt.Errorf("%w: version %q (only version 1 exists)", ErrLDIFUnsupported, value))
			}
			continue
		}
		first = false
		if !bytes.EqualFold(name, []byte("dn")) {
			return count, fail(no, "", fmt.Errorf("%w: record starts with %q instead of a dn: line", ErrLDIFSyntax, name))
		}
		rec := ldifRecord{e: &Entry{DN: string(value)}, size: len(value)}
		for {
			line, no, err = lr.next()
			if err != nil {
				return count, fail(no, rec.e.DN, readErr(err))
			}
			if len(line) == 0 { // blank line or end of input
				break
			}
			name, value, err := parseLDIFLine(line)
			if err != nil {
				return count, fail(no, rec.e.DN, err)
			}
			if err := rec.add(name, value, log); err != nil {
				return count, fail(no, rec.e.DN, err)
			}
		}
		e := rec.finish()
		if err := ctx.Err(); err != nil {
			return count, err
		}
		if err := yield(e); err != nil {
			return count, err
		}
		count++
	}
}

var errLineTooLong = fmt.Errorf("%w: line longer than %d bytes", ErrLDIFTooLarge, MaxLDIFLine)

// readErr prefixes an error from the underlying reader; the package's own
// sentinels already carry a prefix.
func readErr(err error) error {
	if errors.Is(err, ErrLDIFSyntax) || errors.Is(err, ErrLDIFUnsupported) || errors.Is(err, ErrLDIFTooLarge) {
		return err
	}
	return fmt.Errorf("directory: reading LDIF: %w", err)
}

// ldifLines reads logical LDIF lines: folded lines joined, comments and
// line endings dropped.
type ldifLines struct {
	r   *bufio.Reader
	n   int    // physical lines read so far
	buf []byte // the current logical line, reused
}

// next returns the next logical line and the physical line it starts on. A
// blank line is returned as an empty, non-nil slice; the end of input as a
// nil slice. Comments are skipped. The slice is valid until the next call.
func (l *ldifLines) next() ([]byte, int, error) {
	for {
		no := l.n + 1
		c, err := l.r.Peek(1)
		if err == io.EOF {
			return nil, no, nil
		}
		if err != nil {
			return nil, no, err
		}
		switch c[0] {
		case '#':
			if err := l.skip(); err != nil {
				return nil, no, err
			}
			for l.continues() {
				if err := l.skip(); err != nil {
					return nil, l.n + 1, err
				}
			}
			continue
		case ' ':
			return nil, no, fmt.Errorf("%w: continuation line (starting with a space) with no line to continue", ErrLDIFSyntax)
		}
		var ok bool
		l.buf, ok, err = l.physical(l.buf[:0], 0)
		if err != nil {
			return nil, no, err
		}
		if !ok {
			return nil, no, nil
		}
		if len(l.buf) == 0 {
			return l.buf, no, nil
		}
		if len(l.buf) > MaxLDIFLine {
			return nil, no, errLineTooLong
		}
		for l.continues() {
			at := len(l.buf)
			l.buf, _, err = l.physical(l.buf, at)
			if err != nil {
				return nil, no, err
			}
			// Drop the continuation's leading space.
			copy(l.buf[at:], l.buf[at+1:])
			l.buf = l.buf[:len(l.buf)-1]
			if len(l.buf) > MaxLDIFLine {
				return nil, no, errLineTooLong
			}
		}
		return l.buf, no, nil
	}
}

// continues reports whether the next physical line starts with a space.
func (l *ldifLines) continues() bool {
	c, err := l.r.Peek(1)
	return err == nil && c[0] == ' '
}

// physical appends the next physical line to dst without its line ending
// (LF or CRLF). ok is false at the end of input. base is where the logical
// line's bytes added by this call start in dst, for the length check.
func (l *ldifLines) physical(dst []byte, base int) ([]byte, bool, error) {
	read := false
	for {
		frag, err := l.r.ReadSlice('\n')
		if len(frag) > 0 {
			read = true
		}
		// Room for the line ending and a continuation's leading space,
		// which next removes before its own exact check.
		if len(dst)+len(frag) > MaxLDIFLine+3 {
			return dst, false, errLineTooLong
		}
		dst = append(dst, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if !read {
				return dst, false, nil
			}
			break
		}
		if err != nil {
			return dst, false, err
		}
		break
	}
	l.n++
	if n := len(dst); n > base && dst[n-1] == '\n' {
		dst = dst[:n-1]
		if n := len(dst); n > base && dst[n-1] == '\r' {
			dst = dst[:n-1]
		}
	}
	if len(dst) > MaxLDIFLine+1 {
		return dst, false, errLineTooLong
	}
	return dst, true, nil
}

// skip consumes one physical line without keeping it.
func (l *ldifLines) skip() error {
	for {
		_, err := l.r.ReadSlice('\n')
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil, io.EOF:
			l.n++
			return nil
		default:
			return err
		}
	}
}

// parseLDIFLine splits "name: value", "name:: base64" and refuses
// "name:< url". The returned value is only valid until the next line is
// read, except for decoded base64, which is fresh.
func parseLDIFLine(line []byte) (name, value []byte, err error) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: line has no colon: %q", ErrLDIFSyntax, clip(line))
	}
	name = line[:i]
	if err := checkAttrName(name); err != nil {
		return nil, nil, err
	}
	rest := line[i+1:]
	switch {
	case len(rest) > 0 && rest[0] == ':':
		enc := bytes.Trim(rest[1:], " ")
		value = make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		n, err := base64.StdEncoding.Decode(value, enc)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: base64 value of %s: %v", ErrLDIFSyntax, name, err)
		}
		return name, value[:n], nil
	case len(rest) > 0 && rest[0] == '<':
		return nil, nil, fmt.Errorf("%w: %s is given by URL (%s:<), which is not read", ErrLDIFUnsupported, name, name)
	default:
		return name, bytes.TrimLeft(rest, " "), nil
	}
}

// checkAttrName accepts an attribute description: a non-empty type, then
// options after ";", with no spaces or control characters.
func checkAttrName(name []byte) error {
	if len(name) == 0 || name[0] == ';' {
		return fmt.Errorf("%w: line has no attribute name before the colon", ErrLDIFSyntax)
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: attribute name %q has a space or a non-ASCII byte", ErrLDIFSyntax, clip(name))
		}
	}
	return nil
}

// clip shortens b for an error message.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// ldifRecord collects one record's attributes into an Entry.
type ldifRecord struct {
	e                     *Entry
	guid, uuid            string
	hasGUID, hasUPN       bool
	hasMail, hasIsDeleted bool
	size                  int
}

func (r *ldifRecord) add(name, value []byte, log *slog.Logger) error {
	if i := bytes.IndexByte(name, ';'); i >= 0 {
		name = name[:i]
	}
	keep := func() error {
		r.size += len(value)
		if r.size > MaxLDIFEntry {
			return fmt.Errorf("%w: entry holds more than %d bytes", ErrLDIFTooLarge, MaxLDIFEntry)
		}
		return nil
	}
	switch strings.ToLower(string(name)) {
	case "dn":
		return fmt.Errorf("%w: second dn: in a record (is a blank line missing?)", ErrLDIFSyntax)
	case "changetype":
		return checkChangeType(value)
	case "control":
		return fmt.Errorf("%w: control: lines belong to change records, which are not read", ErrLDIFUnsupported)
	case "objectguid":
		if r.hasGUID {
			return nil
		}
		id, err := guidValue(value)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrLDIFSyntax, err)
		}
		r.guid, r.hasGUID = id, true
	case "entryuuid":
		if r.uuid == "" {
			r.uuid = string(value)
		}
	case "userprincipalname":
		if r.hasUPN {
			log.Debug("LDIF: extra userPrincipalName value ignored", "dn", r.e.DN)
			return nil
		}
		r.hasUPN = true
		r.e.UserPrincipalName = string(value)
		return keep()
	case "mail":
		if r.hasMail {
			log.Debug("LDIF: extra mail value ignored", "dn", r.e.DN, "mail", string(value))
			return nil
		}
		r.hasMail = true
		r.e.Mail = string(value)
		return keep()
	case "proxyaddresses":
		r.e.ProxyAddresses = append(r.e.ProxyAddresses, string(value))
		return keep()
	case "usercertificate":
		r.e.UserCertificate = append(r.e.UserCertificate, cloneValue(value))
		return keep()
	case "usersmimecertificate":
		r.e.UserSMIMECertificate = append(r.e.UserSMIMECertificate, cloneValue(value))
		return keep()
	case "isdeleted":
		if !r.hasIsDeleted {
			r.hasIsDeleted = true
			r.e.Deleted = strings.EqualFold(string(value), "TRUE")
		}
	}
	return nil
}

// cloneValue copies a value out of the line buffer. An empty value is an
// empty, non-nil slice however it was written.
func cloneValue(v []byte) []byte {
	c := make([]byte, len(v))
	copy(c, v)
	return c
}

// checkChangeType is the one place that decides what a changetype: line
// does. "changetype: add" carries the entry's attributes exactly as a
// content record does, and ldifde writes it in every record it exports, so
// it is read as content. Every other change record (modify, delete, modrdn,
// moddn) describes an edit, not an entry, and is refused.
func checkChangeType(value []byte) error {
	if strings.EqualFold(strings.TrimSpace(string(value)), "add") {
		return nil
	}
	return fmt.Errorf("%w: change record (changetype: %s); only content records and add records are read", ErrLDIFUnsupported, clip(value))
}

// guidValue reads an objectGUID value: 16 raw bytes, or a GUID string.
func guidValue(v []byte) (string, error) {
	if len(v) == 16 {
		return FormatGUID(v)
	}
	if b, err := ParseGUID(string(v)); err == nil {
		return FormatGUID(b)
	}
	return "", fmt.Errorf("objectGUID is %d bytes and not a GUID string, want 16 bytes", len(v))
}

func (r *ldifRecord) finish() *Entry {
	switch {
	case r.hasGUID:
		r.e.ID = r.guid
	case r.uuid != "":
		r.e.ID = r.uuid
	default:
		r.e.ID = r.e.DN
	}
	return r.e
}

// WriteLDIF writes entries to w as an RFC 2849 content file that
// [ReadLDIF] reads back equal: a "version: 1" line, then one record per
// entry. Values that are not safe as plain text (non-ASCII, control
// characters, a leading space, colon or "<", a trailing space) are written
// as base64; lines are folded at 76 columns.
//
// The ID is written as a 16-byte binary objectGUID when it is a GUID string
// as [FormatGUID] writes it, else as entryUUID when it differs from the DN;
// an ID equal to the DN (or empty) is not written and reads back as the DN.
// Mail and UserPrincipalName are written when not empty, "isDeleted: TRUE"
// when Deleted. Entry.Source is not written.
func WriteLDIF(w io.Writer, entries ...*Entry) error {
	bw := bufio.NewWriter(w)
	lw := ldifWriter{w: bw}
	lw.raw("version: 1\n")
	for i, e := range entries {
		if e == nil {
			return fmt.Errorf("directory: WriteLDIF: entry %d is nil", i)
		}
		lw.raw("\n")
		lw.attr("dn", []byte(e.DN))
		if b, ok := canonicalGUID(e.ID); ok {
			lw.attr("objectGUID", b)
		} else if e.ID != "" && e.ID != e.DN {
			lw.attr("entryUUID", []byte(e.ID))
		}
		if e.UserPrincipalName != "" {
			lw.attr("userPrincipalName", []byte(e.UserPrincipalName))
		}
		if e.Mail != "" {
			lw.attr("mail", []byte(e.Mail))
		}
		for _, p := range e.ProxyAddresses {
			lw.attr("proxyAddresses", []byte(p))
		}
		for _, c := range e.UserCertificate {
			lw.attr("userCertificate", c)
		}
		for _, c := range e.UserSMIMECertificate {
			lw.attr("userSMIMECertificate", c)
		}
		if e.Deleted {
			lw.attr("isDeleted", []byte("TRUE"))
		}
		if lw.err != nil {
			return fmt.Errorf("directory: WriteLDIF: %w", lw.err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("directory: WriteLDIF: %w", err)
	}
	return lw.err
}

// canonicalGUID returns the objectGUID bytes for id when id is a GUID string
// exactly as FormatGUID writes it (so that it reads back unchanged).
func canonicalGUID(id string) ([]byte, bool) {
	b, err := ParseGUID(id)
	if err != nil {
		return nil, false
	}
	if s, err := FormatGUID(b); err != nil || s != id {
		return nil, false
	}
	return b, true
}

// ldifFoldWidth is the column at which WriteLDIF folds lines.
const ldifFoldWidth = 76

type ldifWriter struct {
	w    *bufio.Writer
	line []byte
	err  error
}

func (lw *ldifWriter) raw(s string) {
	if lw.err == nil {
		_, lw.err = lw.w.WriteString(s)
	}
}

// attr writes one "name: value" or "name:: base64" line, folded.
func (lw *ldifWriter) attr(name string, value []byte) {
	l := append(lw.line[:0], name...)
	l = append(l, ':')
	if safeLDIFString(value) {
		if len(value) > 0 {
			l = append(l, ' ')
			l = append(l, value...)
		}
	} else {
		l = append(l, ": "...)
		l = base64.StdEncoding.AppendEncode(l, value)
	}
	lw.line = l
	for width := ldifFoldWidth; len(l) > 0 && lw.err == nil; width = ldifFoldWidth - 1 {
		n := min(width, len(l))
		if width != ldifFoldWidth {
			lw.raw(" ")
		}
		if lw.err == nil {
			_, lw.err = lw.w.Write(l[:n])
		}
		lw.raw("\n")
		l = l[n:]
	}
}

// safeLDIFString reports whether v can be written as a plain value: RFC
// 2849's SAFE-STRING (ASCII without NUL, CR and LF; not starting with a
// space, colon or "<"), and not ending with a space, which readers may trim.
func safeLDIFString(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	switch v[0] {
	case ' ', ':', '<':
		return false
	}
	if v[len(v)-1] == ' ' {
		return false
	}
	for _, c := range v {
		if c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return true
}

// Identity returns the file's path: a saved plan made from one LDIF file
// is not applied with another as its source (see smimesync.Identifier).
func (f LDIFFile) Identity() string { return f.Path }
