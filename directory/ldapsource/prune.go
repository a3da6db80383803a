package ldapsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/atomicfile"
)

// PruneError is a write-back that failed for one entry.
type PruneError struct {
	// DN and ID name the entry.
	DN, ID string
	// Attribute is the attribute written.
	Attribute string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *PruneError) Error() string {
	return fmt.Sprintf("ldapsource: prune %s of %s (%s): %v", e.Attribute, e.DN, e.ID, e.Err)
}

// Unwrap returns the cause.
func (e *PruneError) Unwrap() error { return e.Err }

// Prune removes values of attr ("userCertificate" or
// "userSMIMECertificate") from the directory entry e, as
// Remove-ADSyncToolsExpiredCertificates does for Entra Connect users.
//
// With Config.Prune.DryRun unset or true (the default) it only logs, at
// Info, what it would remove. Otherwise it first writes each value to
// Config.Prune.BackupDir as <ID>-<SHA-256 fingerprint>.<attr> (mode 0600,
// written atomically) and appends a line to manifest.jsonl there (DN, ID,
// attribute, fingerprint, time), then deletes exactly these values. A
// value already gone is not an error. On Active Directory the entry is
// addressed by its objectGUID, so a rename since the read does not matter.
func (s *Source) Prune(ctx context.Context, e *directory.Entry, attr string, values [][]byte) error {
	if e == nil {
		return errors.New("ldapsource: prune: nil entry")
	}
	var canon string
	switch {
	case strings.EqualFold(attr, "userCertificate"):
		canon = "userCertificate"
	case strings.EqualFold(attr, "userSMIMECertificate"):
		canon = "userSMIMECertificate"
	default:
		return &PruneError{DN: e.DN, ID: e.ID, Attribute: attr, Err: errors.New("only userCertificate and userSMIMECertificate can be pruned")}
	}
	if len(values) == 0 {
		return nil
	}
	fps := make([]string, len(values))
	for i, v := range values {
		sum := sha256.Sum256(v)
		fps[i] = hex.EncodeToString(sum[:])
	}
	if s.cfg.Prune.dryRun() {
		s.log.Info("ldapsource: dry run: would remove values", "dn", e.DN, "id", e.ID, "attribute", canon, "fingerprints", fps)
		return nil
	}
	if err := s.backup(e, canon, values, fps); err != nil {
		return &PruneError{DN: e.DN, ID: e.ID, Attribute: canon, Err: fmt.Errorf("backup: %w", err)}
	}
	if err := s.removeValues(ctx, e, canon, values, fps); err != nil {
		return &PruneError{DN: e.DN, ID: e.ID, Attribute: canon, Err: err}
	}
	s.log.Info("ldapsource: removed values", "dn", e.DN, "id", e.ID, "attribute", canon, "fingerprints", fps)
	return nil
}

// backupName returns a file name for the value: the entry's ID (made safe
// for file systems), its fingerprint and the attribute.
func backupName(id, fp, attr string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, id)
	if len(safe) > 100 {
		sum := sha256.Sum256([]byte(id))
		safe = hex.EncodeToString(sum[:16])
	}
	return safe + "-" + fp + "." + attr
}

type manifestLine struct {
	Time        time.Time `json:"time"`
	DN          string    `json:"dn"`
	ID          string    `json:"id"`
	Source      string    `json:"source,omitempty"`
	Attribute   string    `json:"attribute"`
	Fingerprint string    `json:"sha256"`
	File        string    `json:"file"`
}

func (s *Source) backup(e *directory.Entry, attr string, values [][]byte, fps []string) error {
	dir := s.cfg.Prune.BackupDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var lines []byte
	for i, v := range values {
		name := backupName(e.ID, fps[i], attr)
		if err := atomicfile.Write(filepath.Join(dir, name), v, 0o600); err != nil {
			return err
		}
		b, err := json.Marshal(manifestLine{Time: s.now().UTC(), DN: e.DN, ID: e.ID, Source: e.Source,
			Attribute: attr, Fingerprint: fps[i], File: name})
		if err != nil {
			return err
		}
		lines = append(append(lines, b...), '\n')
	}
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	f, err := os.OpenFile(filepath.Join(dir, "manifest.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(lines); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The renames and a new manifest are durable only once the directory
	// is: before the values leave the directory server.
	return syncDir(dir)
}

// syncDir flushes the directory dir itself to stable storage. Windows
// cannot sync a directory handle (NTFS journals the renames): there it
// does nothing. A variable for tests.
var syncDir = func(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return d.Close()
}

// removeValues deletes the values, on one cached connection that is
// redialled (with backoff) when it was lost.
func (s *Source) removeValues(ctx context.Context, e *directory.Entry, attr string, values [][]byte, fps []string) error {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.pruneConn == nil {
			c, url, err := s.connect(ctx)
			if err != nil {
				return err
			}
			info, err := s.rootDSE(ctx, c, url)
			if err != nil {
				c.Close()
				return err
			}
			s.pruneConn, s.pruneInfo = c, info
		}
		closed, err := s.modify(ctx, e, attr, values, fps)
		if closed {
			s.pruneConn = nil // closed by modify
		}
		if err == nil || !isNetwork(err) || attempt >= 1 {
			return err
		}
		if s.pruneConn != nil {
			s.pruneConn.Close()
			s.pruneConn = nil
		}
	}
}

// modify deletes the values on s.pruneConn. closed reports that it closed
// the connection to end a request that outlived ctx or Config.Timeout.
func (s *Source) modify(ctx context.Context, e *directory.Entry, attr string, values [][]byte, fps []string) (closed bool, _ error) {
	c, info := s.pruneConn, s.pruneInfo
	name := attr
	target := e.DN
	if info.kind == ServerAD {
		// Only an objectGUID ID names the entry by GUID (a binary
		// id_attribute such as mS-DS-ConsistencyGuid looks alike).
		if id := s.cfg.IDAttribute; id == "" || strings.EqualFold(id, "objectGUID") {
			if guid, err := directory.ParseGUID(e.ID); err == nil {
				target = "<GUID=" + hex.EncodeToString(guid) + ">"
			}
		}
	} else if attr == "userCertificate" {
		name = "userCertificate;binary" // certificate syntax: slapd insists
	}
	// go-ldap's Modify takes no context and the connection has no
	// deadline: each request is bounded by ctx and Config.Timeout by
	// closing the connection under it.
	del := func(vs [][]byte) error {
		req := ldap.NewModifyRequest(target, nil)
		strs := make([]string, len(vs))
		for i, v := range vs {
			strs[i] = string(v)
		}
		req.Delete(name, strs)
		rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
		stop := context.AfterFunc(rctx, func() { c.Close() })
		err := c.Modify(req)
		if stop() {
			return err
		}
		closed = true
		if err == nil {
			return nil // done just before the close
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("ldapsource: prune abandoned: %w", cerr)
		}
		return fmt.Errorf("%w for %v", ErrTimeout, s.cfg.Timeout)
	}
	err := del(values)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
		return closed, err
	}
	// Some value is gone already: remove the others one by one.
	for i, v := range values {
		if closed {
			// A request finished as the timer closed the connection:
			// the caller redials and retries (removed values are skipped).
			return closed, fmt.Errorf("%w: closed at its timeout", ErrConnectionLost)
		}
		err := del([][]byte{v})
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
			s.log.Info("ldapsource: value already removed", "dn", e.DN, "attribute", attr, "sha256", fps[i])
			continue
		}
		if err != nil {
			return closed, err
		}
	}
	return closed, nil
}

// Close closes the connection Prune keeps open. The Source stays usable.
func (s *Source) Close() error {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	if s.pruneConn == nil {
		return nil
	}
	err := s.pruneConn.Close()
	s.pruneConn = nil
	return err
}
