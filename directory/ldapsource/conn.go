package ldapsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// conn is the part of an LDAP connection the source uses; *ldap.Conn has
// it. Everything goes through SearchAsync, so a pass streams.
type conn interface {
	SearchAsync(ctx context.Context, req *ldap.SearchRequest, bufferSize int) ldap.Response
	Modify(req *ldap.ModifyRequest) error
	Close() error
	// IsClosing reports a connection closed or lost; GetLastError says why.
	// A search on a lost connection may end without an error (go-ldap
	// v3.4.15 closes its result channel silently): callers check.
	IsClosing() bool
	GetLastError() error
}

// dialFunc connects to one URL, secures and binds the connection.
type dialFunc func(ctx context.Context, rawURL string) (conn, error)

// ConnectError says that no server could be reached and bound. It holds
// one error per URL tried in the last round.
type ConnectError struct {
	// Errors holds, per URL, why it failed (each names the URL).
	Errors []error
}

// Error implements error.
func (e *ConnectError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, err := range e.Errors {
		msgs[i] = err.Error()
	}
	kind := -1
	for _, err := range e.Errors {
		switch k := failure(err); {
		case kind == -1:
			kind = k
		case kind != k:
			kind = failOther
		}
	}
	if kind == -1 {
		kind = failOther
	}
	return "ldapsource: " + headline[kind] + ": " + strings.Join(msgs, "; ")
}

// Unwrap returns the per-URL errors, so errors.As finds a
// *x509.UnknownAuthorityError or an *ldap.Error inside.
func (e *ConnectError) Unwrap() []error { return e.Errors }

// urlError names the URL (and the stage) an error happened at.
type urlError struct {
	url, stage string
	err        error
}

func (e *urlError) Error() string {
	msg := e.url + ": " + e.stage + ": " + e.err.Error()
	if h := hint(e.url, e.err); h != "" {
		msg += " (" + h + ")"
	}
	return msg
}
func (e *urlError) Unwrap() error { return e.err }

// permanent reports whether retrying err cannot help: certificate
// failures and refused credentials (retrying those would also risk an
// account lockout).
func permanent(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &ve) {
		return true
	}
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication,
		ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultAuthMethodNotSupported) {
		return true
	}
	var ue *urlError
	if notTLS(err) || errors.As(err, &ue) && ldapsOnPlainPort(ue.url) {
		// A plain LDAP port answers TLS the same way every time.
		return true
	}
	var cfg *bindConfigError
	return errors.As(err, &cfg)
}

// bindConfigError is a bind that cannot work whatever the server does (a
// missing password file, a bad keytab).
type bindConfigError struct{ err error }

func (e *bindConfigError) Error() string { return e.err.Error() }
func (e *bindConfigError) Unwrap() error { return e.err }

// connect returns a bound connection to the first URL that answers,
// trying them all up to 1+Retries rounds with exponential backoff.
func (s *Source) connect(ctx context.Context) (conn, string, error) {
	backoff := 500 * time.Millisecond
	for round := 0; ; round++ {
		var errs []error
		allPermanent := true
		for _, u := range s.urls {
			c, err := s.dial(ctx, u)
			if err == nil {
				return c, u, nil
			}
			s.log.Debug("ldapsource: connect failed", "url", u, "err", err)
			errs = append(errs, err)
			allPermanent = allPermanent && permanent(err)
		}
		cerr := &ConnectError{Errors: errs}
		if allPermanent || round >= s.cfg.Retries || ctx.Err() != nil {
			return nil, "", cerr
		}
		s.log.Warn("ldapsource: cannot connect, retrying", "in", backoff, "round", round+1, "of", s.cfg.Retries+1, "err", cerr)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, "", errors.Join(ctx.Err(), cerr)
		case <-t.C:
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// tlsConfig returns the TLS settings for host.
func (s *Source) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.cfg.ServerName}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if s.cfg.CAFile != "" {
		pem, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			return nil, &bindConfigError{&ConfigError{Field: "ca_file", Reason: "ca_file: " + err.Error(), Err: err}}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &bindConfigError{configErr("ca_file", "ca_file %s holds no PEM certificate", s.cfg.CAFile)}
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// dialLDAP is the real dialFunc: connect, StartTLS unless the URL is
// ldaps or plain LDAP is allowed, bind.
func (s *Source) dialLDAP(ctx context.Context, rawURL string) (conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &urlError{rawURL, "parse", err}
	}
	tc, err := s.tlsConfig(u.Hostname())
	if err != nil {
		return nil, &urlError{rawURL, "tls", err}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	d := &net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	type result struct {
		c   *ldap.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := s.dialBind(u, d, tc)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, &urlError{rawURL, stageOf(r.err), r.err}
		}
		return r.c, nil
	case <-ctx.Done():
		go func() { // the dial goroutine finishes on its own timeouts
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, &urlError{rawURL, "connect", ctx.Err()}
	}
}

type stagedError struct {
	stage string
	err   error
}

func (e *stagedError) Error() string { return e.err.Error() }
func (e *stagedError) Unwrap() error { return e.err }

func stageOf(err error) string {
	var se *stagedError
	if errors.As(err, &se) {
		return se.stage
	}
	return "connect"
}

func (s *Source) dialBind(u *url.URL, d *net.Dialer, tc *tls.Config) (*ldap.Conn, error) {
	c, err := ldap.DialURL(u.String(), ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, &stagedError{"connect", err}
	}
	// A deadline for the handshake and the bind; cleared afterwards.
	c.SetTimeout(s.cfg.DialTimeout)
	if u.Scheme == "ldap" && !s.cfg.AllowPlainLDAP {
		// go-ldap flattens a StartTLS handshake error into text: verify
		// the certificate here, so the typed x509 error reaches the caller.
		var verifyErr error
		stc := tc.Clone()
		stc.InsecureSkipVerify = true // verified by VerifyConnection below
		stc.VerifyConnection = func(cs tls.ConnectionState) error {
			verifyErr = verifyChain(cs, tc)
			return verifyErr
		}
		if err := c.StartTLS(stc); err != nil {
			c.Close()
			if verifyErr != nil {
				err = verifyErr
			}
			return nil, &stagedError{"starttls", err}
		}
	}
	if u.Scheme == "ldap" && s.cfg.AllowPlainLDAP && s.cfg.Bind.method() == BindSimple {
		s.plainWarned.Do(func() {
			s.log.Warn("simple bind over plain LDAP (allow_plain_ldap): the bind password and every entry read cross the network unencrypted; use ldaps:// or StartTLS",
				"url", u.Redacted(), "user", s.cfg.Bind.User)
		})
	}
	if err := s.bind(c, u); err != nil {
		c.Close()
		return nil, &stagedError{"bind as " + s.bindName(), err}
	}
	c.SetTimeout(0) // searches are watched by the source's own idle timer
	return c, nil
}

func (s *Source) bindName() string {
	if s.cfg.Bind.User != "" {
		return string(s.cfg.Bind.method()) + " " + s.cfg.Bind.User
	}
	return string(s.cfg.Bind.method())
}

// bind authenticates c as configured.
func (s *Source) bind(c *ldap.Conn, u *url.URL) error {
	b := &s.cfg.Bind
	pw, err := b.password()
	if err != nil {
		return &bindConfigError{err}
	}
	switch b.method() {
	case BindAnonymous:
		return nil
	case BindSimple:
		return c.Bind(b.User, pw)
	case BindNTLM:
		domain, user := ntlmUser(b.User, b.Domain)
		return c.NTLMBind(domain, user, pw)
	case BindKerberos:
		return s.kerberosBind(c, u, pw)
	case BindSSPI:
		return s.sspiBind(c, u, pw)
	}
	return &bindConfigError{fmt.Errorf("unknown bind method %q", b.Method)}
}

// ntlmUser splits DOMAIN\user and user@domain.
func ntlmUser(user, domain string) (string, string) {
	if d, u, ok := strings.Cut(user, `\`); ok {
		return d, u
	}
	if domain == "" {
		if u, d, ok := strings.Cut(user, "@"); ok {
			return d, u
		}
	}
	return domain, user
}

// spn returns the service principal for u.
func (s *Source) spn(u *url.URL) string {
	if s.cfg.Bind.SPN != "" {
		return s.cfg.Bind.SPN
	}
	return "ldap/" + u.Hostname()
}

// verifyChain verifies the server's certificate chain as crypto/tls does
// for a client: against tc.RootCAs (nil: the system roots) for
// tc.ServerName.
func verifyChain(cs tls.ConnectionState, tc *tls.Config) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         tc.RootCAs,
		DNSName:       tc.ServerName,
		Intermediates: inter,
	})
	return err
}
