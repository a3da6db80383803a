package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDepartedUser: a user who leaves the directory is shown by plan and
// sync (text and JSON) and keeps what was published; with
// remove_departed: true, sync takes away what smimesync published to the
// file sink's recipient, and nothing else.
func TestDepartedUser(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	dir := filepath.Dir(cfg)
	if code, _, stderr := runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("first sync exit %d: %s", code, stderr)
	}
	// Someone else puts a value on alice's recipient.
	tenant := filepath.Join(dir, "published.json")
	var doc struct {
		Recipients map[string]map[string]any `json:"recipients"`
	}
	b, err := os.ReadFile(tenant)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	alice := doc.Recipients["alice@smime.example"]
	published := alice["userCertificate"].([]any)
	alice["userCertificate"] = append(published, "AQID")
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tenant, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Alice leaves the directory.
	ldif, err := os.ReadFile(filepath.Join(dir, "users.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, rec := range strings.Split(string(ldif), "\n\n") {
		if !strings.Contains(rec, "dn: CN=Alice") {
			kept = append(kept, rec)
		}
	}
	if len(kept) != len(strings.Split(string(ldif), "\n\n"))-1 {
		t.Fatal("alice's record not found in the LDIF")
	}
	if err := os.WriteFile(filepath.Join(dir, "users.ldif"), []byte(strings.Join(kept, "\n\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "plan", "--config", cfg)
	if code != exitOK {
		t.Fatalf("plan exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`alice@smime\.example\s+skip\s`).MatchString(stdout) {
		t.Errorf("plan has no skip row for alice:\n%s", stdout)
	}
	for _, want := range []string{
		"left the directory: 2 certificates published on alice@smime.example stay (remove_departed is off)",
		"1 user left the directory with certificates published: 0 to remove, 1 left in place",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan does not say %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runCLI(t, "plan", "--config", cfg, "--json")
	if code != exitOK {
		t.Fatalf("plan --json exit %d: %s", code, stderr)
	}
	var plan struct {
		Changes []struct {
			User, Action, Reason string
			Published            []string
		} `json:"changes"`
		Summary struct{ Departed, Depart int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	if c := plan.Changes[0]; c.User != "alice@smime.example" || c.Action != "skip" || c.Reason != "departed" || len(c.Published) != 2 || plan.Summary.Departed != 1 {
		t.Errorf("plan --json: %+v, summary %+v", plan.Changes, plan.Summary)
	}
	if code, _, stderr = runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("sync exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(tenant); string(after) != string(b) {
		t.Errorf("sync without remove_departed changed the tenant:\n%s", after)
	}
	code, stdout, stderr = runCLI(t, "report", "--config", cfg)
	if code != exitOK || !strings.Contains(stdout, "Left the directory with certificates published (1)") ||
		!regexp.MustCompile(`alice@smime\.example\s+alice@smime\.example\s+left-published`).MatchString(stdout) {
		t.Errorf("report exit %d:\n%s\n%s", code, stdout, stderr)
	}

	// The admin asks for the clean-up.
	if err := os.WriteFile(cfg, []byte(basicConfig+"remove_departed: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, "sync", "--config", cfg)
	if code != exitOK || !regexp.MustCompile(`alice@smime\.example\s+depart\s+written\s`).MatchString(stdout) ||
		!strings.Contains(stdout, "removing what smimesync published from alice@smime.example [takes away 2 certificates it carries now]") {
		t.Fatalf("sync with remove_departed exit %d:\n%s\n%s", code, stdout, stderr)
	}
	if b, err = os.ReadFile(tenant); err != nil {
		t.Fatal(err)
	}
	doc.Recipients = nil
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	alice = doc.Recipients["alice@smime.example"]
	if uc, _ := alice["userCertificate"].([]any); len(uc) != 1 || uc[0] != "AQID" || alice["userSMIMECertificate"] != nil {
		t.Errorf("alice's recipient after the clean-up: %v; want only the value someone else put there", alice)
	}
	// Nothing more to do: the next plan has no row for her.
	if _, stdout, _ = runCLI(t, "plan", "--config", cfg); strings.Contains(stdout, "alice") {
		t.Errorf("alice is still planned after the clean-up:\n%s", stdout)
	}
}
