package service

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
)

// closedPortError is a real dial error: a loopback port nothing listens on.
func closedPortError(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Skip("a closed port accepted a connection")
	}
	return err
}

func TestErrorCode(t *testing.T) {
	dial := closedPortError(t)
	bindRefused := fmt.Errorf("ldap://dc01.corp.example:389: bind as simple cn=svc-sync,ou=service,dc=corp,dc=example: %w",
		&ldap.Error{ResultCode: ldap.LDAPResultInvalidCredentials, Err: errors.New("80090308: LdapErr: DSID-0C090447, comment: AcceptSecurityContext error, data 52e")})
	for _, tt := range []struct {
		name string
		err  error
		want Code
	}{
		{"none", nil, ""},
		{"guard", &smimesync.GuardError{Losing: 9, Max: 1}, CodeGuard},
		{"state unreadable", &planError{fmt.Errorf("%w: /var/lib/smimesync/state.json: bad", smimesync.ErrStateUnreadable)}, CodeState},
		{"state unwritable", fmt.Errorf("smimesync: nothing was written: %w", smimesync.ErrStateUnwritable), CodeState},
		{"bind refused", &planError{bindRefused}, CodeBindRefused},
		{"directory unreachable", &planError{fmt.Errorf("ldap://dc01.corp.example:389: connect: %w", dial)}, CodeSourceUnreachable},
		{"directory silent", &planError{ldapsource.ErrTimeout}, CodeSourceUnreachable},
		{"directory certificate", &planError{fmt.Errorf("starttls: %w", x509.UnknownAuthorityError{})}, CodeSourceTLS},
		{"LDIF", &planError{fmt.Errorf("users.ldif line 3: %w", directory.ErrLDIFSyntax)}, CodeSourceData},
		{"other source error", &planError{errors.New("something at 10.1.2.3")}, CodeSource},
		{"token refused", fmt.Errorf("exchange: getting a token for https://outlook.office365.com/.default: %w: AADSTS7000215", exchange.ErrUnauthorized), CodeSinkAuth},
		{"sign-in refused with a code", fmt.Errorf("exchange: getting a token: %w", &azauth.SignInError{Code: "AADSTS7000215", Description: "Invalid client secret provided for app 1111 at login.example.com", Err: exchange.ErrUnauthorized}), CodeSinkAuth + ":AADSTS7000215"},
		{"throttled", fmt.Errorf("x: %w", exchange.ErrRetriesExhausted), CodeSinkThrottled},
		{"writes failed", fmt.Errorf("smimesync: 2 %w (first: alice@corp.example: boom)", smimesync.ErrChangesFailed), CodeWritesFailed},
		{"cloud unreachable", fmt.Errorf("apply: %w", dial), CodeSinkUnreachable},
		{"cancelled", fmt.Errorf("smimesync: apply cancelled after 2 writes: %w", context.Canceled), CodeCancelled},
		{"other", errors.New("whatever happened at 10.1.2.3"), CodeError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.want {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestHealthzHidesErrorText: /healthz shows the code of a pass's error,
// never its text (host names, the bind account, addresses); the log has
// the text.
func TestHealthzHidesErrorText(t *testing.T) {
	t0 := time.Now()
	s := &Service{Now: func() time.Time { return t0.Add(time.Second) }}
	s.init()
	s.health = newHealth([]string{"exo"}, time.Minute, t0)
	err := &planError{fmt.Errorf("ldap://dc01.corp.example:389 (10.1.2.3): bind as simple cn=svc-sync,ou=service,dc=corp,dc=example: %w",
		&ldap.Error{ResultCode: ldap.LDAPResultInvalidCredentials, Err: errors.New("invalid credentials")})}
	s.health.finished("exo", t0, err)
	rec := httptest.NewRecorder()
	s.Mux().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, string(CodeBindRefused)) {
		t.Errorf("/healthz: %d %s; want 503 with %q", rec.Code, body, CodeBindRefused)
	}
	for _, secret := range []string{"dc01", "corp.example", "10.1.2.3", "svc-sync", "cn=", "credentials"} {
		if strings.Contains(body, secret) {
			t.Errorf("/healthz shows %q: %s", secret, body)
		}
	}
}

func TestHTTPServerLimits(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("server limits: ReadHeaderTimeout %v ReadTimeout %v WriteTimeout %v IdleTimeout %v MaxHeaderBytes %d; want all set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}

// TestListenWarnsOffLoopback: the service warns when it serves on an
// address that is not loopback (here all interfaces; nothing connects to
// it), and not when it serves on loopback.
func TestListenWarnsOffLoopback(t *testing.T) {
	for _, tt := range []struct {
		listen string
		warn   bool
	}{
		{"127.0.0.1:0", false},
		{"0.0.0.0:0", true},
	} {
		t.Run(tt.listen, func(t *testing.T) {
			var buf bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := &Service{
				Interval: time.Hour, Listen: tt.listen,
				Logger:   slog.New(slog.NewTextHandler(&buf, nil)),
				OnListen: func(string) { cancel() },
			}
			if err := s.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(buf.String(), "not a loopback address"); got != tt.warn {
				t.Errorf("listen %s: warned %v, want %v; log:\n%s", tt.listen, got, tt.warn, buf.String())
			}
		})
	}
	for _, tt := range []struct {
		ip   string
		want bool
	}{{"127.0.0.1", true}, {"127.1.2.3", true}, {"::1", true}, {"0.0.0.0", false}, {"::", false}, {"192.0.2.10", false}} {
		if got := isLoopback(&net.TCPAddr{IP: net.ParseIP(tt.ip)}); got != tt.want {
			t.Errorf("isLoopback(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}
