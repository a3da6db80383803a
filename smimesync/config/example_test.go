package config_test

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/config"
)

// A program reads the file, then builds one Syncer per sink (and, for a
// service, config.File.BuildService). Nothing is read or contacted until
// a Syncer plans.
func ExampleParse() {
	yaml := []byte(`
source: {ldif: {path: users.ldif}}
sink: {file: {path: published.json}}
state: {path: state.json}
guard: {max_removals: 50}
`)
	cfg, err := config.Parse(yaml, "/etc/smimesync/smimesync.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	syncers, err := cfg.Syncers(slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range syncers {
		fmt.Println(s.Name, s.Guard.MaxRemovals, s.State.(*smimesync.BoltState).Path)
	}
	fmt.Println(cfg.ReportPath())
	// Output:
	// file 50 /etc/smimesync/state.db
	// /etc/smimesync/state.report.db
}

// A slip names the file, the line and the key's YAML path; errors.As
// tells it from other failures.
func ExampleError() {
	yaml := []byte(`
source: {ldif: {path: users.ldif}}
sink:
  file: {pth: published.json}
`)
	_, err := config.Parse(yaml, "smimesync.yaml")
	var ce *config.Error
	fmt.Println(errors.As(err, &ce), ce.Line, ce.Key)
	fmt.Println(err)
	// Output:
	// true 4 sink.file.pth
	// smimesync.yaml:4: sink.file.pth: unknown key (known here: path)
}
