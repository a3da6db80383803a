package ldapsource

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

func TestStreamFailures(t *testing.T) {
	dn := "CN=A,DC=example,DC=com"
	one := fakeResult{entry: entry(dn, map[string][][]byte{"mail": vals("a@example.com")})}
	for _, tc := range []struct {
		name  string
		pages func(page int) ([]fakeResult, error)
		want  func(error) bool
	}{
		{"server stops answering", func(int) ([]fakeResult, error) { return []fakeResult{one}, errHang },
			func(err error) bool { return errors.Is(err, ErrTimeout) }},
		{"connection lost silently", func(p int) ([]fakeResult, error) {
			if p == 0 {
				return []fakeResult{one, pagedDone("more")}, nil
			}
			return nil, errVanish
		}, func(err error) bool { return errors.Is(err, ErrConnectionLost) }},
		{"paging control missing on page 2", func(p int) ([]fakeResult, error) {
			if p == 0 {
				return []fakeResult{one, pagedDone("more")}, nil
			}
			return []fakeResult{one}, nil
		}, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "lacks the paged-results control")
		}},
		{"server error", func(int) ([]fakeResult, error) {
			return nil, ldap.NewError(ldap.LDAPResultBusy, errors.New("busy"))
		}, func(err error) bool { return ldap.IsErrorWithCode(err, ldap.LDAPResultBusy) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := 0
			fc := &fakeConn{}
			fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
				if r, ok := adRootDSE(req); ok {
					return r, nil
				}
				p := page
				page++
				return tc.pages(p)
			}
			s, _ := newFakeSource(t, Config{Delta: "none", Timeout: 50 * time.Millisecond, Retries: 1}, fc)
			res, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
			if !tc.want(err) {
				t.Errorf("err = %v", err)
			}
			if res.Cookie != nil || res.Full {
				t.Errorf("a failed pass returned %+v", res)
			}
		})
	}
}

// TestYieldError: the caller's error ends the pass, returned as is.
func TestYieldError(t *testing.T) {
	stop := errors.New("stop")
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return []fakeResult{{entry: entry("CN=A,DC=example,DC=com", nil)}, {entry: entry("CN=B,DC=example,DC=com", nil)}, pagedDone("")}, nil
	}
	s, _ := newFakeSource(t, Config{Delta: "none"}, fc)
	n := 0
	_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d entries", err, n)
	}
}
