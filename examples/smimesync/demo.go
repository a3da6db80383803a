package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/smimesync/go-smimesync/internal/demo"
)

// cmdDemo is the embedded default: it makes a small directory at run time
// with Go's crypto (package internal/demo) (good, expired, wrong usage, wrong address, too many
// certificates, a BER blob, a signing-only certificate, …), then plans and
// syncs it from an LDIF source to a file sink in a temporary folder, and
// prints the plan and the report.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "folder for the demo's files (default: a new temporary folder, removed afterwards)")
	jsonOut := fs.Bool("json", false, "print the plan and the report as JSON")
	if err := fs.Parse(args); err != nil {
		return usagef("demo: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("demo: unexpected arguments %v", fs.Args())
	}
	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "smimesync-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}

	d, err := demo.Write(*dir, clock())
	if err != nil {
		return err
	}
	config := filepath.Join(*dir, demo.ConfigFile)

	if !*jsonOut {
		if err := d.WriteIntro(stdout, *dir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "$ smimesync plan --config %s\n\n", config)
	}
	planArgs := []string{"--config", config}
	if *jsonOut {
		planArgs = append(planArgs, "--json")
	}
	if err := cmdPlan(ctx, planArgs, stdout, stderr); err != nil {
		return err
	}
	if !*jsonOut {
		fmt.Fprintf(stdout, "\n$ smimesync sync --config %s\n\n", config)
	}
	if err := cmdSync(ctx, planArgs, stdout, stderr); err != nil {
		return err
	}
	if !*jsonOut {
		fmt.Fprintf(stdout, "\n$ smimesync sync --config %s   # again: nothing left to write\n\n", config)
		if err := cmdSync(ctx, planArgs, stdout, stderr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n$ smimesync report --config %s\n\n", config)
		if err := cmdReport(ctx, planArgs, stdout, stderr); err != nil {
			return err
		}
		if keep {
			fmt.Fprintf(stdout, "\nThe files are in %s.\n", *dir)
		}
	}
	return nil
}
