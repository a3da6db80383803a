// Command customsink shows how internal tooling embeds the smimesync
// library with a sink of its own. Instead of publishing to Microsoft 365, its
// sink collects what each recipient should carry, and the program prints it
// as CSV (address, attribute, SHA-256, notAfter): a report for another
// system to import.
//
//	go run ./examples/smimesync demo --dir /tmp/demo   # makes /tmp/demo/users.ldif
//	go run ./examples/customsink /tmp/demo/users.ldif > carry.csv
package main

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// csvSink is a cloud.Sink that remembers what each recipient should carry.
type csvSink struct {
	mu    sync.Mutex
	carry map[string]cloud.Certificates
}

// Find: every entry with a mail address is a recipient.
func (s *csvSink) Find(ctx context.Context, e *directory.Entry) (*cloud.Recipient, error) {
	if e.Mail == "" {
		return nil, fmt.Errorf("%s has no mail: %w", e.DN, cloud.ErrNotFound)
	}
	return &cloud.Recipient{ID: e.Mail, Name: e.Mail, Kind: "CSV row"}, nil
}

// Current: a fresh report starts empty.
func (s *csvSink) Current(ctx context.Context, r *cloud.Recipient) (cloud.Certificates, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.carry[r.ID], nil
}

// Write records the set.
func (s *csvSink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.carry[r.ID] = c
	return nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// clock is the policy's clock: time.Now; the tests set the test clock.
var clock = time.Now

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: customsink USERS.ldif")
		return 2
	}
	sink := &csvSink{carry: map[string]cloud.Certificates{}}
	s := &smimesync.Syncer{
		Source: &directory.LDIFFile{Path: args[0]},
		Sink:   sink,
		Policy: &smimesync.Policy{Now: clock, RequireEncryption: true}, // only what senders can encrypt to
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if _, err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(stderr, "customsink:", err)
		return 1
	}

	w := csv.NewWriter(stdout)
	w.Write([]string{"address", "attribute", "sha256", "not_after"})
	for _, addr := range slices.Sorted(maps.Keys(sink.carry)) {
		c := sink.carry[addr]
		for _, v := range c.UserCertificate {
			notAfter := ""
			if cert, err := smimesync.ParseCertificate(v); err == nil {
				notAfter = cert.NotAfter.UTC().Format(time.DateOnly)
			}
			sum := sha256.Sum256(v)
			w.Write([]string{addr, cloud.AttrUserCertificate, hex.EncodeToString(sum[:]), notAfter})
		}
		for _, v := range c.UserSMIMECertificate {
			sum := sha256.Sum256(v)
			w.Write([]string{addr, cloud.AttrUserSMIMECertificate, hex.EncodeToString(sum[:]), ""})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		fmt.Fprintln(stderr, "customsink:", err)
		return 1
	}
	return 0
}
