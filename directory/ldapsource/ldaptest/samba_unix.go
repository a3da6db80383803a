//go:build unix

package ldaptest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Samba's fixed settings. The LDAP ports cannot be moved.
const (
	sambaRealm     = "SMIMESYNC.TEST"
	sambaDomain    = "SMIMESYNC"
	sambaHost      = "smimesyncdc"
	sambaBaseDN    = "DC=smimesync,DC=test"
	sambaAdminPass = "Passw0rd!Smime"
	sambaIP        = "127.0.0.1"
	// sambaVersion is written next to a provisioned domain; a domain with
	// another version is provisioned again. Bump it when the smb.conf
	// settings below change.
	sambaVersion = "3"
)

// SambaDirEnv names the environment variable that overrides [SambaDir].
const SambaDirEnv = "SMIMESYNC_LDAPTEST_SAMBA_DIR"

// SambaDir returns where the shared Samba DC lives:
// $SMIMESYNC_LDAPTEST_SAMBA_DIR, or /tmp/smimesync-ldaptest/samba.
func SambaDir() string {
	if d := os.Getenv(SambaDirEnv); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "smimesync-ldaptest", "samba")
}

var (
	sambaMu  sync.Mutex
	sambaSrv *Server
)

// Samba returns the machine's shared Samba AD DC, provisioning and starting
// it when needed (see the package documentation). It skips or fails t
// (see [SkipOrFail]) when Samba is not installed or does not come up.
func Samba(t testing.TB) *Server {
	t.Helper()
	if !installed(sambaBin()) || !installed(sambaTool()) {
		SkipOrFail(t, "ldaptest: Samba is not installed (Debian: samba samba-dsdb-modules samba-vfs-modules samba-ad-provision; see .ci/ldap-packages.sh)")
	}
	sambaMu.Lock()
	defer sambaMu.Unlock()
	if sambaSrv != nil && sambaSrv.healthy() == nil {
		return sambaSrv
	}
	srv, err := startSamba(context.Background(), SambaDir(), t.Logf)
	if err != nil {
		SkipOrFail(t, "ldaptest: Samba did not come up: "+err.Error())
	}
	if err := srv.ensureLDAPSPN(); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	sambaSrv = srv
	return srv
}

func sambaServer(dir string) (*Server, error) {
	caFile := filepath.Join(dir, "tls", "ca.pem")
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM block", caFile)
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	return &Server{
		Kind:          KindSamba,
		URL:           "ldap://" + sambaIP,
		LDAPSURL:      "ldaps://" + sambaIP,
		CAFile:        caFile,
		CA:            ca,
		BaseDN:        sambaBaseDN,
		AdminDN:       "CN=Administrator,CN=Users," + sambaBaseDN,
		AdminPassword: sambaAdminPass,
		Realm:         sambaRealm,
		Dir:           dir,
	}, nil
}

// healthy binds as the administrator.
func (s *Server) healthy() error {
	c, err := s.dialAdmin(s.URL)
	if err != nil {
		return err
	}
	return c.Close()
}

// startSamba returns a healthy Samba in dir, under an exclusive flock.
func startSamba(ctx context.Context, dir string, logf func(string, ...any)) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("flock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if v, err := os.ReadFile(filepath.Join(dir, "harness-version")); err == nil && strings.TrimSpace(string(v)) == sambaVersion {
		srv, err := sambaServer(dir)
		if err == nil && srv.healthy() == nil {
			return srv, nil // running: reuse
		}
		if err == nil {
			t0 := time.Now()
			if err = runSamba(ctx, dir); err == nil {
				logf("ldaptest: started the provisioned Samba in %s in %v", dir, time.Since(t0).Round(time.Millisecond))
				return srv, nil
			}
		}
		logf("ldaptest: provisioned Samba in %s does not start (%v); provisioning again", dir, err)
	}
	t0 := time.Now()
	if err := provisionSamba(ctx, dir); err != nil {
		return nil, err
	}
	logf("ldaptest: provisioned Samba in %s in %v", dir, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := runSamba(ctx, dir); err != nil {
		return nil, err
	}
	logf("ldaptest: Samba ready in %v", time.Since(t0).Round(time.Millisecond))
	return sambaServer(dir)
}

func provisionSamba(ctx context.Context, dir string) error {
	stopSambaIn(dir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	ca, err := NewCA("smimesync test Samba CA")
	if err != nil {
		return err
	}
	if _, err := ca.WriteServerTLS(filepath.Join(dir, "tls")); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, sambaTool(), "domain", "provision",
		"--targetdir="+dir, "--realm="+sambaRealm, "--domain="+sambaDomain,
		"--server-role=dc", "--dns-backend=NONE", "--backend-store=mdb",
		"--adminpass="+sambaAdminPass, "--host-name="+sambaHost,
		"--option=netbios name="+strings.ToUpper(sambaHost), "--host-ip="+sambaIP,
		"--option=interfaces="+sambaIP, "--option=bind interfaces only=yes")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("samba-tool domain provision: %w\n%s", err, tail(out, 30))
	}
	if err := os.WriteFile(filepath.Join(dir, "provision.log"), out, 0o644); err != nil {
		return err
	}
	if err := fixSambaConf(filepath.Join(dir, "etc", "smb.conf"), dir); err != nil {
		return err
	}
	for _, d := range []string{"run", "log", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "harness-version"), []byte(sambaVersion+"\n"), 0o644)
}

// fixSambaConf rewrites [global]: the LDAP and KDC services only, simple
// binds without TLS allowed, TLS with our certificate, every path under dir.
func fixSambaConf(path, dir string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	set := [][2]string{
		{"server services", "ldap kdc"},
		{"ldap server require strong auth", "no"},
		{"ldb:nosync", "true"},
		{"interfaces", sambaIP},
		{"bind interfaces only", "yes"},
		{"tls enabled", "yes"},
		{"tls keyfile", dir + "/tls/server.key"},
		{"tls certfile", dir + "/tls/server.pem"},
		{"tls cafile", dir + "/tls/ca.pem"},
		{"pid directory", dir + "/run"},
		{"ncalrpc dir", dir + "/run/ncalrpc"},
		{"winbindd socket directory", dir + "/run/winbindd"},
		{"ntp signd socket directory", dir + "/run/ntp_signd"},
		{"log file", dir + "/log/log.%m"},
		{"logging", "file"},
	}
	isSet := func(line string) bool {
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			return false
		}
		k = strings.ToLower(strings.TrimSpace(k))
		for _, kv := range set {
			if k == kv[0] {
				return true
			}
		}
		return false
	}
	var out bytes.Buffer
	inGlobal := false
	emit := func() {
		for _, kv := range set {
			fmt.Fprintf(&out, "\t%s = %s\n", kv[0], kv[1])
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "[") {
			if inGlobal {
				emit()
			}
			inGlobal = strings.EqualFold(trim, "[global]")
			out.WriteString(line + "\n")
			continue
		}
		if inGlobal && isSet(trim) {
			continue
		}
		out.WriteString(line + "\n")
	}
	if inGlobal {
		emit()
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// runSamba starts samba (it daemonizes) and waits until LDAP answers.
func runSamba(ctx context.Context, dir string) error {
	stopSambaIn(dir)
	cmd := exec.CommandContext(ctx, sambaBin(), "-s", filepath.Join(dir, "etc", "smb.conf"), "-D")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("samba -D: %w\n%s", err, tail(out, 20))
	}
	srv, err := sambaServer(dir)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err = srv.healthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(dir, "log", "log.*"))
			var lt []byte
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				lt = append(lt, tail(b, 10)...)
			}
			stopSambaIn(dir)
			return fmt.Errorf("samba did not answer LDAP within 60 s: %w\n%s", err, lt)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StopSamba stops the shared Samba started by [Samba] (it is otherwise
// left running; see the package documentation).
func StopSamba() error {
	dir := SambaDir()
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	stopSambaIn(dir)
	return nil
}

// stopSambaIn kills the samba whose PID is in dir/run/samba.pid and waits
// for it to exit (its children exit with it).
func stopSambaIn(dir string) {
	pidFile := filepath.Join(dir, "run", "samba.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if syscall.Kill(pid, syscall.SIGTERM) == nil {
		for i := 0; i < 150 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = os.Remove(pidFile)
}

func sambaBin() string {
	if p, err := exec.LookPath("samba"); err == nil {
		return p
	}
	return "/usr/sbin/samba"
}

func sambaTool() string {
	if p, err := exec.LookPath("samba-tool"); err == nil {
		return p
	}
	return "/usr/bin/samba-tool"
}

func tail(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

func installed(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// ensureLDAPSPN registers [LDAPServicePrincipal] on the DC's account:
// provisioning without DNS leaves only the HOST/ principals, and the KDC
// issues tickets only for registered names.
func (s *Server) ensureLDAPSPN() error {
	c, err := s.dialAdmin(s.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	dn := "CN=" + strings.ToUpper(sambaHost) + ",OU=Domain Controllers," + sambaBaseDN
	req := ldap.NewModifyRequest(dn, nil)
	req.Add("servicePrincipalName", []string{LDAPServicePrincipal})
	err = c.Modify(req)
	if err != nil && !ldap.IsErrorAnyOf(err, ldap.LDAPResultAttributeOrValueExists, ldap.LDAPResultConstraintViolation) {
		return fmt.Errorf("add %s to %s: %w", LDAPServicePrincipal, dn, err)
	}
	return nil
}

// processAlive reports whether process pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// pidNamespace names this process's pid namespace where the system says
// (Linux: "pid:[4026531836]"), or is empty.
func pidNamespace() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return ns
}
