package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// The emulated tenant's identity.
const (
	benchTenantID = "7d2c6c1e-0b8a-4b6e-9a43-5e1f0c3d2b10"
	benchOrg      = "contoso.onmicrosoft.com"
	benchClientID = "4f1d9e2a-8c3b-4a5d-b6e7-0f9a8b7c6d5e"
)

// tenantConfig is how the emulated tenant is set up.
type tenantConfig struct {
	// Budget turns the service's write budget on (3,000 writes per 150 s
	// per app and tenant); otherwise writes are not throttled.
	Budget bool
	// TimeScale makes the emulator's clock run this many times faster
	// than the wall clock.
	TimeScale float64
	// ReadBack is the Exchange sink's read_back.
	ReadBack string
	// Dir holds the file sink's file.
	Dir string
}

// tenant is where the passes publish: an emulator, a file or memory.
type tenant interface {
	// spec tells a pass how to reach it.
	spec() sinkSpec
	// inProcess returns the sink passes must share in this process (the
	// memory sink), or nil when a pass may build its own.
	inProcess() cloud.Sink
	// resetCounters clears the request counters.
	resetCounters()
	// counters returns the requests the service received and the 429s it
	// answered since the last reset; ok is false when nothing counts
	// requests (file, memory).
	counters() (requests, throttled int, ok bool)
	Close()
}

// newTenant seeds the tenant for kind with the generator's users.
func newTenant(kind string, g *Generator, cfg tenantConfig) (tenant, error) {
	switch kind {
	case "exchange":
		return newExchangeTenant(g, cfg)
	case "graph":
		return newGraphTenant(g, cfg)
	case "file":
		path := filepath.Join(cfg.Dir, "published.json")
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		return &fileTenant{path: path}, nil
	case "memory":
		return &memoryTenant{sink: cloudtest.NewMemorySink()}, nil
	}
	return nil, fmt.Errorf("bench: unknown sink %q (want exchange, graph, file or memory)", kind)
}

// fileTenant is a cloud.FileSink's file: every address is a writable
// recipient.
type fileTenant struct{ path string }

func (t *fileTenant) spec() sinkSpec             { return sinkSpec{Kind: "file", File: t.path} }
func (t *fileTenant) inProcess() cloud.Sink      { return nil }
func (t *fileTenant) resetCounters()             {}
func (t *fileTenant) counters() (int, int, bool) { return 0, 0, false }
func (t *fileTenant) Close()                     {}

// memoryTenant is a cloudtest.MemorySink: every address is a writable
// recipient.
type memoryTenant struct{ sink *cloudtest.MemorySink }

func (t *memoryTenant) spec() sinkSpec             { return sinkSpec{Kind: "memory"} }
func (t *memoryTenant) inProcess() cloud.Sink      { return t.sink }
func (t *memoryTenant) resetCounters()             {}
func (t *memoryTenant) counters() (int, int, bool) { return 0, 0, false }
func (t *memoryTenant) Close()                     {}

// exchangeTenant is the Exchange Online emulator with its token server.
type exchangeTenant struct {
	tokens *azauthtest.Server
	exo    *exchangetest.Server
	cloud  cloudSpec
}

// emulatorCredentials starts a token server for the benchmark's app and
// returns it with the cloudSpec fields it determines.
func emulatorCredentials() (*azauthtest.Server, cloudSpec, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, cloudSpec{}, err
	}
	tokens := azauthtest.NewServer()
	tokens.AddSecretApp(benchTenantID, benchClientID, hex.EncodeToString(secret))
	// Every httptest server presents the same certificate: the token
	// server's is the emulators' too.
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tokens.Certificate().Raw})
	return tokens, cloudSpec{
		TenantID: benchTenantID, Organization: benchOrg, ClientID: benchClientID,
		Secret: hex.EncodeToString(secret), Login: tokens.URL, CA: ca,
	}, nil
}

func newExchangeTenant(g *Generator, cfg tenantConfig) (*exchangeTenant, error) {
	tokens, cs, err := emulatorCredentials()
	if err != nil {
		return nil, err
	}
	budget := exchangetest.DefaultBudget
	if !cfg.Budget {
		budget = -1
	}
	exo := exchangetest.NewServer(exchangetest.Config{
		Tokens:       tokens,
		TenantID:     benchTenantID,
		Organization: benchOrg,
		Budget:       budget,
		TimeScale:    cfg.TimeScale,
	})
	rs := make([]exchangetest.Recipient, 0, g.Users)
	for i := range g.Users {
		r := exchangetest.Recipient{Guid: g.RecipientGUID(i), PrimarySmtpAddress: g.Mail(i)}
		switch g.Recipient(i) {
		case RecipientNone:
			continue
		case RecipientMailUser:
			r.RecipientTypeDetails = "MailUser"
		case RecipientMailContact:
			r.RecipientTypeDetails = "MailContact"
		case RecipientSynced:
			r.IsDirSynced = true
		}
		rs = append(rs, r)
	}
	exo.Add(rs...)
	cs.Endpoint = exo.URL
	cs.ReadBack = cfg.ReadBack
	return &exchangeTenant{tokens: tokens, exo: exo, cloud: cs}, nil
}

func (t *exchangeTenant) inProcess() cloud.Sink { return nil }
func (t *exchangeTenant) resetCounters()        { t.exo.ResetCounters() }
func (t *exchangeTenant) counters() (int, int, bool) {
	return t.exo.Requests(""), t.exo.Throttled(), true
}

func (t *exchangeTenant) spec() sinkSpec {
	c := t.cloud
	return sinkSpec{Kind: "exchange", Cloud: &c}
}

func (t *exchangeTenant) Close() {
	t.exo.Close()
	t.tokens.Close()
}
