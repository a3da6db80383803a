package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/smimesync"
)

// This file holds what the reliability tests share: a directory of users
// made at test time, an emulated Exchange tenant seeded from it, and the
// three properties every fault must leave intact:
//
//   - nothingValidRemoved: no recipient lost a certificate it carried that
//     the policy keeps for its directory user;
//   - nothingWrittenTwice: the emulator applied at most one Set-* per
//     recipient (the exceptions a test allows are named and counted);
//   - converges: a full plan of the next pass is all `unchanged`, and every
//     recipient carries exactly what the policy keeps.

// relDomain is the mail domain of the reliability tests' users.
const relDomain = "reliability.example"

// relUser is one directory user of a reliability test and what its
// recipient was seeded with.
type relUser struct {
	Name string
	Mail string
	// Guid is the recipient's Exchange GUID; ID is the directory entry's.
	Guid, ID string
	// Old is a valid certificate the recipient already carries and the
	// directory keeps; New is its renewal, in the directory only.
	Old, New []byte
	// Expired, when set, is in the directory and on the recipient; the
	// policy drops it, so it may go.
	Expired []byte
	// Blob, when set, is a userSMIMECertificate in the directory only.
	Blob []byte
}

// relUsers makes n users with certificates from the ldaptest user CA:
// every one has Old and New, every fifth an expired certificate too, every
// seventh an Outlook blob.
func relUsers(t *testing.T, prefix string, n int) []*relUser {
	t.Helper()
	ca, err := ldaptest.UserCA()
	if err != nil {
		t.Fatal(err)
	}
	now := testclock.Now() // ldaptest.UserCerts's clock
	var users []*relUser
	for i := range n {
		u := &relUser{
			Name: fmt.Sprintf("%s%03d", prefix, i),
			Guid: fmt.Sprintf("e0000000-0000-4000-8000-%012d", i+1),
			ID:   fmt.Sprintf("d0000000-0000-4000-8000-%012d", i+1),
		}
		u.Mail = u.Name + "@" + relDomain
		certs, err := ldaptest.UserCerts(u.Mail, 2)
		if err != nil {
			t.Fatal(err)
		}
		u.Old, u.New = certs[0], certs[1]
		if i%5 == 0 {
			if u.Expired, err = ca.IssueSMIME(u.Mail, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if i%7 == 3 {
			if u.Blob, err = ca.SMIMEBlob(u.New); err != nil {
				t.Fatal(err)
			}
		}
		users = append(users, u)
	}
	return users
}

// directoryCerts returns what the directory holds for u: Old (and Expired)
// before the renewal, Old, New (and Expired) after.
func (u *relUser) directoryCerts(renewed bool) (certs, blobs [][]byte) {
	certs = [][]byte{u.Old}
	if renewed {
		certs = append(certs, u.New)
	}
	if u.Expired != nil {
		certs = append(certs, u.Expired)
	}
	if renewed && u.Blob != nil {
		blobs = [][]byte{u.Blob}
	}
	return certs, blobs
}

// entry is u as an LDIF entry.
func (u *relUser) entry(renewed bool) *directory.Entry {
	certs, blobs := u.directoryCerts(renewed)
	return &directory.Entry{
		ID: u.ID, DN: "CN=" + u.Name + ",OU=Staff,DC=reliability,DC=example",
		Mail: u.Mail, UserCertificate: certs, UserSMIMECertificate: blobs,
	}
}

// writeUsersLDIF writes the users (renewed) to dir/users.ldif.
func writeUsersLDIF(t *testing.T, dir string, users []*relUser) {
	t.Helper()
	var entries []*directory.Entry
	for _, u := range users {
		entries = append(entries, u.entry(true))
	}
	var b bytes.Buffer
	if err := directory.WriteLDIF(&b, entries...); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.ldif"), b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// relTenant is the emulated tenant of a reliability test.
type relTenant struct {
	exo    *exchangetest.Server
	tokens *azauthtest.Server
	users  []*relUser
}

// newRelTenant starts the token and Exchange emulators (cfg's Tokens,
// TenantID and Organization are filled in) with one mailbox per user,
// seeded with the user's old certificate (and expired one).
func newRelTenant(t *testing.T, cfg exchangetest.Config, users []*relUser) *relTenant {
	t.Helper()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(testTenant, testClient, "s3cret")
	cfg.Tokens, cfg.TenantID, cfg.Organization = tokens, testTenant, testOrg
	exo := exchangetest.NewServer(cfg)
	t.Cleanup(exo.Close)
	for _, u := range users {
		seed := [][]byte{u.Old}
		if u.Expired != nil {
			seed = append(seed, u.Expired)
		}
		exo.Add(exchangetest.Recipient{Guid: u.Guid, PrimarySmtpAddress: u.Mail, UserCertificate: seed})
	}
	t.Setenv("SMIMESYNC_TEST_SECRET", "s3cret")
	return &relTenant{exo: exo, tokens: tokens, users: users}
}

// sinkYAML is the sink section pointing at the emulators, with small retry
// settings so that faults cost milliseconds.
func (rt *relTenant) sinkYAML(requestTimeout time.Duration, maxTries int) string {
	return exchangeSinkYAML(rt.tokens, rt.exo) + fmt.Sprintf(`    request_timeout: %s
    retry: {base: 1ms, cap: 10ms, max_tries: %d}
`, requestTimeout, maxTries)
}

// tenantState is what each recipient carries: fingerprint → attribute,
// by lower-case address.
type tenantState map[string]map[smimesync.Fingerprint]string

// snapshot reads every user's recipient from the emulator.
func (rt *relTenant) snapshot(t *testing.T) tenantState {
	t.Helper()
	out := tenantState{}
	for _, u := range rt.users {
		r, ok := rt.exo.Recipient(u.Mail)
		if !ok {
			t.Fatalf("the emulator lost the recipient %s", u.Mail)
		}
		out[strings.ToLower(u.Mail)] = fingerprintSet(cloud.Certificates{UserCertificate: r.UserCertificate, UserSMIMECertificate: r.UserSMimeCertificate})
	}
	return out
}

func fingerprintSet(c cloud.Certificates) map[smimesync.Fingerprint]string {
	m := map[smimesync.Fingerprint]string{}
	for _, v := range c.UserCertificate {
		m[sha256.Sum256(v)] = cloud.AttrUserCertificate
	}
	for _, v := range c.UserSMIMECertificate {
		m[sha256.Sum256(v)] = cloud.AttrUserSMIMECertificate
	}
	return m
}

// discardLogger is a logger that drops everything.
var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// keptByPolicy reads the whole directory the configuration names and
// returns, by lower-case address, what the configuration's policy keeps.
func keptByPolicy(t *testing.T, cfgPath string) tenantState {
	t.Helper()
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	src, err := cfg.BuildSource(discardLogger)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	pol, err := cfg.BuildPolicy(discardLogger)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := tenantState{}
	if _, err := src.Read(ctx, directory.Pass{}, func(e *directory.Entry) error {
		out[cloud.PrimaryAddress(e)] = fingerprintSet(pol.Evaluate(ctx, e).Kept())
		return nil
	}); err != nil {
		t.Fatalf("reading the directory: %v", err)
	}
	return out
}

// nothingValidRemoved checks that no recipient lost a certificate it
// carried before that the policy keeps for its user (kept), and that
// nothing came in from elsewhere: now ⊆ before ∪ kept, before ∩ kept ⊆ now.
func nothingValidRemoved(t *testing.T, before, now, kept tenantState) {
	t.Helper()
	removed, foreign := 0, 0
	for addr, was := range before {
		is, want := now[addr], kept[addr]
		for f, attr := range was {
			if want[f] == attr && is[f] != attr {
				removed++
				t.Errorf("nothingValidRemoved: %s lost its valid %s %s", addr, attr, hex.EncodeToString(f[:8]))
			}
		}
		for f, attr := range is {
			if was[f] != attr && want[f] != attr {
				foreign++
				t.Errorf("nothingValidRemoved: %s carries %s %s, which neither it nor the directory had", addr, attr, hex.EncodeToString(f[:8]))
			}
		}
	}
	if removed == 0 && foreign == 0 {
		t.Logf("nothingValidRemoved: %d recipients keep every valid certificate they carried", len(before))
	}
}

// nothingWrittenTwice checks the emulator's applied writes since its
// counters were last reset: at most one per recipient, except the Guids in
// twice, which must have exactly two (a write repeated for a known
// reason). It returns the counts by Guid.
func nothingWrittenTwice(t *testing.T, exo *exchangetest.Server, twice map[string]bool) map[string]int {
	t.Helper()
	counts := exo.WriteCounts()
	bad := 0
	for guid, n := range counts {
		switch {
		case twice[guid] && n != 2:
			bad++
			t.Errorf("nothingWrittenTwice: %s written %d times, want 2 (its first write was never recorded)", guid, n)
		case !twice[guid] && n > 1:
			bad++
			t.Errorf("nothingWrittenTwice: %s written %d times", guid, n)
		}
	}
	for guid := range twice {
		if counts[guid] == 0 {
			t.Errorf("nothingWrittenTwice: %s, allowed a second write, was never written", guid)
		}
	}
	if bad == 0 {
		t.Logf("nothingWrittenTwice: %d recipients written, %d of them twice (allowed: %d)", len(counts), len(twice), len(twice))
	}
	return counts
}

// converges plans a full pass with the configuration (the saved cookie
// ignored, nothing written) and checks that every user is planned
// `unchanged` and that the emulator's recipient carries exactly the
// values the plan keeps, byte for byte by fingerprint.
func converges(t *testing.T, cfgPath string, exo *exchangetest.Server, users int) {
	t.Helper()
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	syncers, err := cfg.Syncers(discardLogger)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syncers {
		// Judge every entry and read every recipient: the check is of
		// the tenant, not of the memos.
		s.Reverify = smimesync.ReverifyEveryPass
		plan, err := s.PlanFull(context.Background())
		if err != nil {
			t.Fatalf("converges: planning: %v", err)
		}
		if len(testrows.Of(t, plan)) != users {
			t.Errorf("converges: the plan has %d entries, want %d", len(testrows.Of(t, plan)), users)
		}
		bad := 0
		for _, c := range testrows.Of(t, plan) {
			if c.Action != smimesync.ActionUnchanged {
				bad++
				t.Errorf("converges: %s is planned %s (%s %s), want unchanged", c.User, c.Action, c.Reason, c.Error)
				continue
			}
			want := map[smimesync.Fingerprint]string{}
			for _, v := range c.Keep {
				want[v.SHA256] = v.Attribute
			}
			r, ok := exo.Recipient(c.Recipient.ID)
			if !ok {
				t.Fatalf("converges: no recipient %s", c.Recipient.ID)
			}
			got := fingerprintSet(cloud.Certificates{UserCertificate: r.UserCertificate, UserSMIMECertificate: r.UserSMimeCertificate})
			if !maps.Equal(got, want) {
				bad++
				t.Errorf("converges: %s carries %d values, the policy keeps %d others", c.User, len(got), len(want))
			}
		}
		if bad == 0 {
			t.Logf("converges: the next full plan is %d × unchanged (%d values kept, %d dropped), and the tenant holds exactly them",
				plan.Summary.Unchanged, plan.Summary.KeptValues, plan.Summary.DroppedValues)
		}
	}
}

// syncJSON runs `sync --json` and decodes its report (nil when the run
// printed none).
func syncJSON(t *testing.T, cfgPath string) (code int, rep *smimesync.Report, stderr string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, "sync", "--json", "--config", cfgPath)
	if strings.TrimSpace(stdout) == "" {
		return code, nil, stderr
	}
	var doc struct {
		Sink string `json:"sink"`
		smimesync.Report
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("sync --json printed no report: %v\n%s", err, stdout)
	}
	return code, &doc.Report, stderr
}
