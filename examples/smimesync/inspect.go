package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/inspect"
)

// cmdInspect prints every certificate in the named files with the default
// policy's verdict (the analysis is package inspect's). A file that cannot
// be read is reported; the others still are, and the exit code is 1.
func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, "print one JSON document")
	if err := fs.Parse(args); err != nil {
		return usagef("inspect: %v", err)
	}
	if fs.NArg() == 0 {
		return usagef("inspect: name at least one FILE")
	}
	doc, err := inspect.ReadFiles(ctx, &smimesync.Policy{Now: clock}, fs.Args())
	if *jsonOut {
		if werr := writeJSON(stdout, doc); werr != nil {
			return werr
		}
	} else if werr := doc.WriteText(stdout); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("inspect: %d of %d files could not be read", doc.Failed(), len(doc.Files))
	}
	return nil
}
