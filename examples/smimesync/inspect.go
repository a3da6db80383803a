package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

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
	pol := &smimesync.Policy{Now: clock}
	doc := inspect.Document{Files: []inspect.File{}}
	failed := 0
	for _, path := range fs.Args() {
		f, err := inspect.ReadFile(ctx, pol, path)
		if err != nil {
			failed++
		}
		doc.Files = append(doc.Files, f)
	}
	if *jsonOut {
		if err := writeJSON(stdout, doc); err != nil {
			return err
		}
	} else {
		for i, f := range doc.Files {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			printInspectFile(stdout, f)
		}
	}
	if failed > 0 {
		return fmt.Errorf("inspect: %d of %d files could not be read", failed, len(doc.Files))
	}
	return nil
}

func printInspectFile(w io.Writer, f inspect.File) {
	fmt.Fprintf(w, "== %s", termSafe(f.Path))
	if f.Kind != "" {
		fmt.Fprintf(w, " (%s)", f.Kind)
	}
	fmt.Fprintln(w)
	if f.Error != "" {
		fmt.Fprintf(w, "error        %s\n", termSafe(f.Error))
	}
	if f.Blob != nil {
		printBlob(w, "", f.Blob)
	}
	for _, c := range f.Certificates {
		printCert(w, "", c)
	}
	for _, e := range f.Entries {
		fmt.Fprintf(w, "-- %s (id %s; addresses %s)\n", termSafe(e.DN), termSafe(e.ID), strings.Join(termSafeAll(e.Addresses), ", "))
		if e.Deleted {
			fmt.Fprintln(w, "   deleted")
		}
		for _, v := range e.Values {
			fmt.Fprintf(w, "   %s[%d] sha256 %s: %s %s\n", termSafe(v.Attribute), v.Index, v.SHA256, v.Verdict, strings.Join(v.Reasons, ", "))
			if v.Error != "" {
				fmt.Fprintf(w, "     error %s\n", termSafe(v.Error))
			}
			if v.Blob != nil {
				printBlob(w, "     ", v.Blob)
			}
			for _, c := range v.Certificates {
				printCert(w, "     ", c)
			}
		}
	}
}

func printBlob(w io.Writer, in string, b *inspect.Blob) {
	fmt.Fprintf(w, "%sblob sha256  %s\n", in, b.SHA256)
	enc := "DER"
	if b.BER {
		enc = "BER (normalised to DER)"
	}
	kind := "certificates only"
	if b.Content {
		kind = "signed content"
	}
	fmt.Fprintf(w, "%sencoding     %s, %s\n", in, enc, kind)
	for _, s := range b.Signers {
		id := termSafe(s.Issuer) + " serial " + termSafe(s.Serial)
		if s.SubjectKeyID != "" {
			id = "subject key id " + s.SubjectKeyID
		}
		fmt.Fprintf(w, "%ssigner       %s\n", in, id)
		if s.SigningTime != "" {
			outside := ""
			if s.SigningTimeOutsideValidity {
				outside = " (outside the signer certificate's validity: noted, not a bad signature)"
			}
			fmt.Fprintf(w, "%s  signed at  %s%s\n", in, s.SigningTime, outside)
		}
		if s.EncryptionTo != "" {
			fmt.Fprintf(w, "%s  encrypt to %s\n", in, termSafe(s.EncryptionTo))
		}
	}
	if len(b.Signers) > 0 {
		if b.SignatureVerified {
			fmt.Fprintf(w, "%ssignature    verified\n", in)
		} else {
			fmt.Fprintf(w, "%ssignature    not verified: %s\n", in, termSafe(b.SignatureError))
		}
	}
	for _, r := range b.Rejected {
		fmt.Fprintf(w, "%srejected     %s\n", in, termSafe(r))
	}
	fmt.Fprintf(w, "%sblob verdict %s %s\n", in, b.Verdict, strings.Join(b.Reasons, ", "))
}

func printCert(w io.Writer, in string, c inspect.Certificate) {
	fmt.Fprintf(w, "%s- sha256      %s\n", in, c.SHA256)
	for _, kv := range [][2]string{
		{"subject", c.Subject},
		{"issuer", c.Issuer},
		{"emails", strings.Join(termSafeAll(c.Emails), ", ")},
		{"not_before", c.NotBefore},
		{"not_after", c.NotAfter},
		{"key", c.Key},
		{"can_encrypt", fmt.Sprint(c.CanEncrypt)},
		{"can_sign", fmt.Sprint(c.CanSign)},
		{"verdict", string(c.Verdict)},
		{"reasons", strings.Join(c.Reasons, ", ")},
	} {
		fmt.Fprintf(w, "%s  %-11s %s\n", in, kv[0], termSafe(kv[1]))
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "%s  note        %s\n", in, termSafe(n))
	}
}
