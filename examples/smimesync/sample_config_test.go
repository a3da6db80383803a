package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSampleConfig: the sample configuration the README points to loads
// through the real loader and builds its source and sink, with the
// environment variables it names set and the CA file it names in place;
// without the client secret variable, it is refused naming it.
func TestSampleConfig(t *testing.T) {
	sample, err := os.ReadFile("smimesync.sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "smimesync.yaml")
	if err := os.WriteFile(path, sample, 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(os.Getenv("SSL_CERT_FILE")) // TestMain's CA: any PEM certificate does
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"SMIMESYNC_LDAP_PASSWORD", "SMIMESYNC_CLIENT_SECRET"} {
		if !strings.Contains(string(sample), env) {
			t.Fatalf("the sample does not name %s", env)
		}
		t.Setenv(env, "from the environment")
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatalf("the sample does not load: %v", err)
	}
	syncers, err := cfg.Syncers(cfg.Logger(&strings.Builder{}))
	if err != nil {
		t.Fatalf("the sample does not build: %v", err)
	}
	if len(syncers) != 1 || syncers[0].Name != "exchange" {
		t.Errorf("sinks %v, want exchange", syncers)
	}
	if cfg.Source == nil || cfg.Source.LDAP == nil {
		t.Error("the sample has no LDAP source")
	}

	t.Setenv("SMIMESYNC_CLIENT_SECRET", "")
	cfg, err = loadConfig(path)
	if err == nil {
		_, err = cfg.Syncers(cfg.Logger(&strings.Builder{}))
	}
	if err == nil || !strings.Contains(err.Error(), "SMIMESYNC_CLIENT_SECRET") {
		t.Errorf("without its client secret the sample builds: %v", err)
	}
}
