package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/directory"
)

// FileRecipientKind is the [Recipient.Kind] of recipients a [FileSink]
// finds.
const FileRecipientKind = "FileRecipient"

// ErrBadFile is wrapped by a [FileSink] whose file exists but is not a
// recipients document. The sink never overwrites such a file.
var ErrBadFile = errors.New("cloud: file sink's file is not a recipients document")

// PrimaryAddress returns the address a sink keyed by address (such as
// [FileSink]) files an entry under: its Mail, lower-cased; else its primary
// proxy address (the one whose prefix is "SMTP:" in upper case, as Exchange
// marks it); else the first "smtp:" proxy address. It returns "" when the
// entry has no SMTP address at all.
func PrimaryAddress(e *directory.Entry) string {
	if e == nil {
		return ""
	}
	if m := strings.ToLower(strings.TrimSpace(e.Mail)); m != "" {
		return m
	}
	for _, p := range e.ProxyAddresses {
		if a, ok := strings.CutPrefix(p, "SMTP:"); ok {
			if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
				return a
			}
		}
	}
	if all := e.Addresses(); len(all) > 0 {
		return all[0]
	}
	return ""
}

// FileSink is a [Sink] that keeps what each recipient carries in a JSON
// file: for the demo, for dry runs, and to see what a sync would publish.
// It models a tenant where every mail user exists: a recipient not yet in
// the file is a writable recipient carrying nothing.
//
// The file looks like this (keys sorted, values sorted, certificates as
// standard base64; all recipient fields are optional):
//
//	{
//	  "recipients": {
//	    "alice@example.com": {
//	      "updated": "2025-01-02T03:04:05Z",
//	      "userCertificate": ["MIID…"],
//	      "userSMIMECertificate": ["MIAG…"]
//	    },
//	    "bob@example.org": {
//	      "readOnly": "directory-synced: only Entra Connect may change it"
//	    }
//	  }
//	}
//
// Recipients are keyed by [PrimaryAddress], lower-cased. A recipient with
// "readOnly" set is found with [Recipient.ReadOnly] set and refuses writes
// with a [*NotWritableError]. "updated" is when the sink last changed the
// recipient.
//
// A missing file is an empty tenant. A file that cannot be parsed (unknown
// fields included) is an error wrapping [ErrBadFile] and is never
// overwritten. Write replaces the file atomically (a temporary file in the
// same directory, written, synced, renamed over the old one, and the
// directory synced), with mode 0600. Reads are served from memory while the
// file is unchanged on disk, but every write rewrites the whole file: the
// sink suits trials, the demo and dry runs, not tens of thousands of
// writes. A FileSink is safe for concurrent use
// within one process; two processes writing one file at once may lose each
// other's changes. A FileSink must not be copied after first use.
//
// The zero value has no file; set Path.
type FileSink struct {
	// Path is the JSON file.
	Path string
	// Logger receives debug messages; nil is silent.
	Logger *slog.Logger
	// Now gives the time recorded as "updated"; nil is time.Now.
	Now func() time.Time

	mu sync.Mutex
	// cache is the document as last read or written, valid while the
	// file's size and modification time are cacheMod.
	cache    *fileDoc
	cacheMod fileStamp
	// failAt, when set (by tests), is called before each step of saving
	// the file; an error makes that step fail.
	failAt func(step string) error
}

// fileStamp identifies a version of the file.
type fileStamp struct {
	size int64
	mod  time.Time
}

// FileRecipient is what a [FileSink]'s file says about one recipient.
type FileRecipient struct {
	// ReadOnly, when not empty, says why the recipient may not be written.
	ReadOnly string `json:"readOnly,omitempty"`
	// Updated is when the sink last wrote the recipient; zero if never.
	Updated time.Time `json:"updated,omitzero"`
	// UserCertificate holds DER X.509 certificates.
	UserCertificate [][]byte `json:"userCertificate,omitempty"`
	// UserSMIMECertificate holds CMS SignedData blobs.
	UserSMIMECertificate [][]byte `json:"userSMIMECertificate,omitempty"`
}

// fileDoc is the file's top level.
type fileDoc struct {
	Recipients map[string]*FileRecipient `json:"recipients"`
}

func (s *FileSink) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Find returns the recipient filed under the entry's [PrimaryAddress]; its
// ID and Name are that address. An entry without an SMTP address gives an
// error wrapping [ErrNotFound].
func (s *FileSink) Find(ctx context.Context, entry *directory.Entry) (*Recipient, error) {
	if entry == nil {
		return nil, errors.New("cloud: FileSink.Find: nil entry")
	}
	addr := PrimaryAddress(entry)
	if addr == "" {
		return nil, fmt.Errorf("cloud: %s has no mail or SMTP proxy address: %w", entry.DN, ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	r := &Recipient{ID: addr, Name: addr, Kind: FileRecipientKind}
	if fr := doc.Recipients[addr]; fr != nil {
		r.ReadOnly = fr.ReadOnly
	}
	return r, nil
}

// Current returns the certificates the file holds for r: none for a
// recipient not in the file.
func (s *FileSink) Current(ctx context.Context, r *Recipient) (Certificates, error) {
	key, err := recipientKey(r)
	if err != nil {
		return Certificates{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.load(ctx)
	if err != nil {
		return Certificates{}, err
	}
	var c Certificates
	if fr := doc.Recipients[key]; fr != nil {
		c.UserCertificate, c.UserSMIMECertificate = fr.UserCertificate, fr.UserSMIMECertificate
	}
	return c, nil
}

// Write replaces what the file holds for r with c and rewrites the file
// atomically. Writing what r already carries (in any order) leaves the
// file untouched. A recipient marked readOnly in the file gives a
// [*NotWritableError].
func (s *FileSink) Write(ctx context.Context, r *Recipient, c Certificates) error {
	key, err := recipientKey(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.load(ctx)
	if err != nil {
		return err
	}
	old := doc.Recipients[key]
	if old == nil {
		old = &FileRecipient{}
	}
	if old.ReadOnly != "" {
		return &NotWritableError{Recipient: key, Reason: old.ReadOnly}
	}
	uc, sc := sortedValues(c.UserCertificate), sortedValues(c.UserSMIMECertificate)
	if equalValues(uc, sortedValues(old.UserCertificate)) && equalValues(sc, sortedValues(old.UserSMIMECertificate)) {
		s.logger().DebugContext(ctx, "file sink: recipient already carries these certificates", "recipient", key)
		return nil
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	prev, had := doc.Recipients[key]
	doc.Recipients[key] = &FileRecipient{
		Updated:              now().UTC().Truncate(time.Second),
		UserCertificate:      uc,
		UserSMIMECertificate: sc,
	}
	if err := s.save(doc); err != nil {
		// The file is as it was: so must the cached document be.
		if had {
			doc.Recipients[key] = prev
		} else {
			delete(doc.Recipients, key)
		}
		return fmt.Errorf("cloud: writing %s for %s: %w", s.Path, key, err)
	}
	s.logger().DebugContext(ctx, "file sink: recipient written", "recipient", key,
		"userCertificate", len(uc), "userSMIMECertificate", len(sc))
	return nil
}

// Recipients returns every recipient in the file, keyed by address.
func (s *FileSink) Recipients(ctx context.Context) (map[string]FileRecipient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]FileRecipient, len(doc.Recipients))
	for k, v := range doc.Recipients {
		out[k] = *v
	}
	return out, nil
}

func recipientKey(r *Recipient) (string, error) {
	if r == nil {
		return "", errors.New("cloud: FileSink: nil recipient")
	}
	key := strings.ToLower(r.ID)
	if key == "" {
		return "", errors.New("cloud: FileSink: recipient has no ID")
	}
	return key, nil
}

// load returns the document: the cached one while the file has not
// changed on disk, else the file read anew. A missing file is an empty
// document. The caller holds s.mu.
func (s *FileSink) load(ctx context.Context) (*fileDoc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Path == "" {
		return nil, errors.New("cloud: FileSink has no Path")
	}
	stamp, exists, missing := s.stampOrMissing()
	if s.cache != nil && exists && stamp == s.cacheMod {
		return s.cache, nil
	}
	if missing {
		// Nothing to read (what read finds on a missing file), without
		// trying to open it: a plan against a new file sink would do so
		// twice per entry. Not cached: looked for again next time.
		s.cache = nil
		return &fileDoc{Recipients: map[string]*FileRecipient{}}, nil
	}
	doc, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cache, s.cacheMod = doc, stamp
	if !exists {
		s.cache = nil // nothing to compare with: read again next time
	}
	return doc, nil
}

// stamp returns the file's size and modification time.
func (s *FileSink) stamp() (fileStamp, bool) {
	st, ok, _ := s.stampOrMissing()
	return st, ok
}

// stampOrMissing is stamp, and whether the file does not exist (any other
// failure to stat it is left to read to report).
func (s *FileSink) stampOrMissing() (st fileStamp, ok, missing bool) {
	fi, err := os.Stat(s.Path)
	if err != nil {
		return fileStamp{}, false, errors.Is(err, fs.ErrNotExist)
	}
	return fileStamp{size: fi.Size(), mod: fi.ModTime()}, true, false
}

// read parses the file.
func (s *FileSink) read() (*fileDoc, error) {
	doc := &fileDoc{Recipients: map[string]*FileRecipient{}}
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cloud: reading %s: %w", s.Path, err)
	}
	var raw fileDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadFile, s.Path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: %s: data after the document", ErrBadFile, s.Path)
	}
	for k, v := range raw.Recipients {
		key := strings.ToLower(k)
		if _, dup := doc.Recipients[key]; dup {
			return nil, fmt.Errorf("%w: %s: recipient %q appears twice (keys are not case-sensitive)", ErrBadFile, s.Path, key)
		}
		if v == nil {
			v = &FileRecipient{}
		}
		doc.Recipients[key] = v
	}
	return doc, nil
}

// save replaces the file with doc atomically.
func (s *FileSink) save(doc *fileDoc) error {
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	step := func(name string) error {
		if s.failAt != nil {
			return s.failAt(name)
		}
		return nil
	}
	dir, base := filepath.Split(s.Path)
	if dir == "" {
		dir = "."
	}
	if err := step("create"); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := step("write"); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := step("sync"); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := step("rename"); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.Path); err != nil {
		return err
	}
	done = true
	if stamp, ok := s.stamp(); ok {
		s.cache, s.cacheMod = doc, stamp
	}
	// The rename is durable once the directory is synced. Best effort:
	// some systems (Windows) cannot sync a directory, and the file is
	// written either way.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func sortedValues(v [][]byte) [][]byte {
	if len(v) == 0 {
		return nil
	}
	out := slices.Clone(v)
	slices.SortFunc(out, bytes.Compare)
	return out
}

func equalValues(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

// Identity returns the file's path: a saved plan made for one file sink is
// not applied to another (see smimesync.Identifier).
func (s *FileSink) Identity() string { return s.Path }
