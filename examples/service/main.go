// Command service embeds the smimesync engine as a long-running service: a
// pass every interval (a full one daily), the state locked against a second
// instance, /healthz and /metrics, and a graceful stop on SIGINT or SIGTERM.
// It reads an LDIF export and publishes to a JSON file (cloud.FileSink).
//
//	go run ./examples/smimesync demo --dir /tmp/demo   # makes /tmp/demo/users.ldif
//	go run ./examples/service -ldif /tmp/demo/users.ldif -dir /tmp/demo
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

func main() {
	ldif := flag.String("ldif", "users.ldif", "the directory export to read (LDIF)")
	dir := flag.String("dir", ".", "folder of the state (state.db) and of what is published (published.json)")
	listen := flag.String("listen", "127.0.0.1:9464", "address of /healthz and /metrics")
	interval := flag.Duration("interval", time.Minute, "pause between passes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *ldif, *dir, *listen, *interval, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves until ctx ends; onListen, when set, is told the address.
func run(ctx context.Context, ldif, dir, listen string, interval time.Duration, onListen func(string)) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	svc := &service.Service{
		Syncers: []service.Named{{Name: "file", Syncer: &smimesync.Syncer{
			Source:     &directory.LDIFFile{Path: ldif},
			Sink:       &cloud.FileSink{Path: filepath.Join(dir, "published.json")},
			State:      &smimesync.BoltState{Path: filepath.Join(dir, "state.db")}, // locked by the service
			Logger:     log,
			WriteGrace: 10 * time.Second, // a stop lets the writes in flight finish
		}}},
		Interval: interval,
		Listen:   listen,
		Logger:   log,
		OnListen: onListen,
	}
	metrics.New().Instrument(svc) // /metrics, fed by the pass and change hooks
	return svc.Run(ctx)
}
