package ldaptest

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a server's plain LDAP port, and can
// cut them: a dropped connection without killing a shared server.
type Proxy struct {
	// URL is the proxy's ldap:// URL (StartTLS works through it).
	URL string

	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// Proxy starts a proxy to s, closed when t ends.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(s.URL, "ldap://")
	if !strings.Contains(target, ":") {
		target += ":389"
	}
	p := &Proxy{URL: "ldap://" + ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.Cut() })
	return p
}

// Cut closes every connection made through the proxy so far. New
// connections are still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
