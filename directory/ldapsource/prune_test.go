package ldapsource

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

// TestPruneFake: the dry run is the default; a real prune backs values up
// before it deletes them, addressing AD entries by objectGUID.
func TestPruneFake(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return nil, nil
	}
	e := &directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=A,DC=example,DC=com"}
	s, logs := newFakeSource(t, Config{}, fc)
	if err := s.Prune(context.Background(), e, "userCertificate", vals("v1")); err != nil {
		t.Fatal(err)
	}
	if len(fc.modifies) != 0 || !strings.Contains(logs.String(), "dry run") {
		t.Fatalf("dry run modified the directory or did not log")
	}
	no := false
	dir := filepath.Join(t.TempDir(), "backup")
	s, _ = newFakeSource(t, Config{Prune: PruneConfig{BackupDir: dir, DryRun: &no}}, fc)
	if err := s.Prune(context.Background(), e, "usersmimecertificate", vals("v1", "v2")); err != nil {
		t.Fatal(err)
	}
	if len(fc.modifies) != 1 {
		t.Fatalf("%d modifies", len(fc.modifies))
	}
	m := fc.modifies[0]
	if m.DN != "<GUID=e004253f894fd3119a0c0305e82c3301>" || len(m.Changes) != 1 ||
		m.Changes[0].Modification.Type != "userSMIMECertificate" || len(m.Changes[0].Modification.Vals) != 2 {
		t.Errorf("modify %+v", m)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.userSMIMECertificate"))
	if len(files) != 2 {
		t.Errorf("backups: %v", files)
	}
	fc.modErr = ldap.NewError(ldap.LDAPResultInsufficientAccessRights, errors.New("no"))
	err := s.Prune(context.Background(), e, "userCertificate", vals("v3"))
	var pe *PruneError
	if !errors.As(err, &pe) || pe.DN != e.DN || !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("err %v", err)
	}
}

// hangConn is a fake whose Modify blocks until the connection is closed.
type hangConn struct {
	*fakeConn
	once   sync.Once
	closed chan struct{}
}

func (c *hangConn) Modify(*ldap.ModifyRequest) error {
	<-c.closed
	return ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed"))
}

func (c *hangConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// TestPruneBounded: a Modify the server never answers ends at
// Config.Timeout or when the context ends, and the next Prune redials.
func TestPruneBounded(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return nil, nil
	}
	no := false
	e := &directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=A,DC=example,DC=com"}
	dials := 0
	for name, tc := range map[string]struct {
		timeout time.Duration
		cancel  bool
		want    error
	}{
		"timeout": {timeout: 50 * time.Millisecond, want: ErrTimeout},
		"context": {timeout: time.Hour, cancel: true, want: context.Canceled},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := newFakeSource(t, Config{Timeout: tc.timeout, Prune: PruneConfig{BackupDir: t.TempDir(), DryRun: &no}}, fc)
			s.dial = func(context.Context, string) (conn, error) {
				dials++
				return &hangConn{fakeConn: fc, closed: make(chan struct{})}, nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			done := make(chan error, 1)
			go func() { done <- s.Prune(ctx, e, "userCertificate", vals("v1")) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("err %v, want %v", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Prune still waits for a server that does not answer")
			}
			before := dials
			s.cfg.Timeout = 10 * time.Millisecond
			go func() { done <- s.Prune(context.Background(), e, "userCertificate", vals("v1")) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("second Prune hangs")
			}
			if dials != before+1 {
				t.Errorf("%d dials for the second Prune, want 1: the closed connection was reused", dials-before)
			}
		})
	}
}

// TestPruneBackupDurable: the backup directory is synced before the
// values are removed; a custom binary ID attribute does not address the
// entry by GUID.
func TestPruneBackupDurable(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return nil, nil
	}
	dir := t.TempDir()
	var synced []string
	orig := syncDir
	syncDir = func(d string) error {
		if len(fc.modifies) != 0 {
			t.Error("directory synced after the modify")
		}
		synced = append(synced, d)
		return orig(d)
	}
	defer func() { syncDir = orig }()
	no := false
	s, _ := newFakeSource(t, Config{IDAttribute: "mS-DS-ConsistencyGuid", Prune: PruneConfig{BackupDir: dir, DryRun: &no}}, fc)
	e := &directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=A,DC=example,DC=com"}
	if err := s.Prune(context.Background(), e, "userCertificate", vals("v1")); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != dir {
		t.Errorf("synced %v, want [%s]", synced, dir)
	}
	if len(fc.modifies) != 1 || fc.modifies[0].DN != e.DN {
		t.Errorf("modifies %+v: want one addressed by DN", fc.modifies)
	}
}
