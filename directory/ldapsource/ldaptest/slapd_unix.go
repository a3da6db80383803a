//go:build unix

package ldaptest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

const (
	slapdSuffix = "dc=smimesync,dc=test"
	slapdRootPW = "secret"
)

func slapdBin() string {
	if p, err := exec.LookPath("slapd"); err == nil {
		return p
	}
	return "/usr/sbin/slapd"
}

// Slapd starts a private OpenLDAP slapd for t on free loopback ports, with
// an empty directory (the suffix dc=smimesync,dc=test and ou=people under
// it), and stops it when t ends. Anonymous reads are allowed; AdminDN is the
// rootdn. The syncprov overlay is loaded (RFC 4533 content sync with a
// session log). It skips or fails t (see [SkipOrFail]) when slapd is not
// installed.
func Slapd(t testing.TB) *Server {
	t.Helper()
	if !installed(slapdBin()) {
		SkipOrFail(t, "ldaptest: slapd is not installed (Debian: slapd ldap-utils; see .ci/ldap-packages.sh)")
	}
	dir, err := os.MkdirTemp("", "smimesync-slapd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv, err := startSlapd(dir)
	if err != nil {
		SkipOrFail(t, "ldaptest: slapd did not come up: "+err.Error())
	}
	t.Cleanup(func() { _ = srv.stop() })
	return srv
}

// proc is a server process run in the foreground.
type proc struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	exited chan struct{}
	err    error
}

func startProc(name string, args ...string) (*proc, error) {
	p := &proc{cmd: exec.Command(name, args...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) kill() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	err := p.cmd.Process.Kill()
	<-p.exited
	return err
}

func (p *proc) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return p.kill()
	}
}

func startSlapd(dir string) (*Server, error) {
	ca, err := NewCA("smimesync test slapd CA")
	if err != nil {
		return nil, err
	}
	caFile, err := ca.WriteServerTLS(filepath.Join(dir, "tls"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	confFile := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confFile, []byte(slapdConf(dir)), 0o600); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, tlsPort, err := freePorts()
		if err != nil {
			return nil, err
		}
		srv := &Server{
			Kind:          KindSlapd,
			URL:           fmt.Sprintf("ldap://127.0.0.1:%d", port),
			LDAPSURL:      fmt.Sprintf("ldaps://127.0.0.1:%d", tlsPort),
			CAFile:        caFile,
			CA:            ca.Cert,
			BaseDN:        slapdSuffix,
			AdminDN:       "cn=admin," + slapdSuffix,
			AdminPassword: slapdRootPW,
			Realm:         "smimesync.test",
			Dir:           dir,
		}
		// -d 0: stay in the foreground, so the process is ours to stop or kill.
		p, err := startProc(slapdBin(), "-d", "0", "-f", confFile, "-h", srv.URL+"/ "+srv.LDAPSURL+"/")
		if err != nil {
			return nil, fmt.Errorf("start slapd: %w", err)
		}
		srv.kill, srv.stop = p.kill, p.stop
		if lastErr = waitLDAP(p, srv.URL, 15*time.Second); lastErr == nil {
			if err := seedSlapd(srv); err != nil {
				_ = p.kill()
				return nil, err
			}
			return srv, nil
		}
		_ = p.kill()
		if !strings.Contains(p.out.String(), "Address already in use") {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// waitLDAP waits until url accepts connections, or p exits, or d passes.
func waitLDAP(p *proc, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v\n%s", filepath.Base(p.cmd.Path), p.err, tail(p.out.Bytes(), 10))
		default:
		}
		c, err := ldap.DialURL(url)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v: %v\n%s", filepath.Base(p.cmd.Path), d, err, tail(p.out.Bytes(), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slapdConf(dir string) string {
	return fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
pidfile %[1]s/slapd.pid
TLSCACertificateFile %[1]s/tls/ca.pem
TLSCertificateFile %[1]s/tls/server.pem
TLSCertificateKeyFile %[1]s/tls/server.key
# the default sizelimit (500) also caps paged searches of non-rootdn clients
sizelimit unlimited
database mdb
maxsize 4294967296
# no fsync per write: 10,000 adds in seconds
dbnosync
suffix "%[2]s"
rootdn "cn=admin,%[2]s"
rootpw %[3]s
directory %[1]s/data
index objectClass eq
index mail,uid,cn eq
index entryCSN,entryUUID eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 10000
`, dir, slapdSuffix, slapdRootPW)
}

func seedSlapd(srv *Server) error {
	c, err := srv.dialAdmin(srv.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	root := ldap.NewAddRequest(slapdSuffix, nil)
	root.Attribute("objectClass", []string{"dcObject", "organization"})
	root.Attribute("o", []string{"smimesync tests"})
	root.Attribute("dc", []string{"smimesync"})
	if err := c.Add(root); err != nil {
		return fmt.Errorf("add %s: %w", slapdSuffix, err)
	}
	people := ldap.NewAddRequest("ou=people,"+slapdSuffix, nil)
	people.Attribute("objectClass", []string{"organizationalUnit"})
	people.Attribute("ou", []string{"people"})
	if err := c.Add(people); err != nil {
		return fmt.Errorf("add ou=people: %w", err)
	}
	return nil
}

// freePorts returns two loopback TCP ports free at the time of the call.
func freePorts() (int, int, error) {
	var ports [2]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}
