package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/smimesync"
)

// ReadFiles inspects the files at paths with pol, in order, one [File]
// each (see [ReadFile]). A file that cannot be read is in the Document
// too, with its Error; the error joins every file's problems, and
// [Document.Failed] counts the files that had one.
func ReadFiles(ctx context.Context, pol *smimesync.Policy, paths []string) (Document, error) {
	doc := Document{Files: []File{}}
	var errs []error
	for _, path := range paths {
		f, err := ReadFile(ctx, pol, path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		doc.Files = append(doc.Files, f)
	}
	return doc, errors.Join(errs...)
}

// Failed is the number of files that could not be read or parsed, whole
// or in part (those with an Error).
func (d Document) Failed() int {
	n := 0
	for _, f := range d.Files {
		if f.Error != "" {
			n++
		}
	}
	return n
}

// WriteText writes the document for people, as `smimesync inspect`
// prints it: per file (a blank line between files) its path and kind, its
// error, its blob, its certificates and its LDIF entries with the verdict
// on each value. Text that came from the files (names, subjects, e-mail
// addresses, errors) is escaped, so that it cannot act on a terminal.
func (d Document) WriteText(w io.Writer) error {
	ew := &termsafe.ErrWriter{W: w}
	for i, f := range d.Files {
		if i > 0 {
			fmt.Fprintln(ew)
		}
		f.writeText(ew)
	}
	return ew.Err
}

func (f File) writeText(w io.Writer) {
	fmt.Fprintf(w, "== %s", termsafe.String(f.Path))
	if f.Kind != "" {
		fmt.Fprintf(w, " (%s)", f.Kind)
	}
	fmt.Fprintln(w)
	if f.Error != "" {
		fmt.Fprintf(w, "error        %s\n", termsafe.String(f.Error))
	}
	if f.Blob != nil {
		f.Blob.writeText(w, "")
	}
	for _, c := range f.Certificates {
		c.writeText(w, "")
	}
	for _, e := range f.Entries {
		fmt.Fprintf(w, "-- %s (id %s; addresses %s)\n", termsafe.String(e.DN), termsafe.String(e.ID), strings.Join(termsafe.All(e.Addresses), ", "))
		if e.Deleted {
			fmt.Fprintln(w, "   deleted")
		}
		for _, v := range e.Values {
			fmt.Fprintf(w, "   %s[%d] sha256 %s: %s %s\n", termsafe.String(v.Attribute), v.Index, v.SHA256, v.Verdict, strings.Join(v.Reasons, ", "))
			if v.Error != "" {
				fmt.Fprintf(w, "     error %s\n", termsafe.String(v.Error))
			}
			if v.Blob != nil {
				v.Blob.writeText(w, "     ")
			}
			for _, c := range v.Certificates {
				c.writeText(w, "     ")
			}
		}
	}
}

func (b *Blob) writeText(w io.Writer, in string) {
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
		id := termsafe.String(s.Issuer) + " serial " + termsafe.String(s.Serial)
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
			fmt.Fprintf(w, "%s  encrypt to %s\n", in, termsafe.String(s.EncryptionTo))
		}
	}
	if len(b.Signers) > 0 {
		if b.SignatureVerified {
			fmt.Fprintf(w, "%ssignature    verified\n", in)
		} else {
			fmt.Fprintf(w, "%ssignature    not verified: %s\n", in, termsafe.String(b.SignatureError))
		}
	}
	for _, r := range b.Rejected {
		fmt.Fprintf(w, "%srejected     %s\n", in, termsafe.String(r))
	}
	fmt.Fprintf(w, "%sblob verdict %s %s\n", in, b.Verdict, strings.Join(b.Reasons, ", "))
}

func (c Certificate) writeText(w io.Writer, in string) {
	fmt.Fprintf(w, "%s- sha256      %s\n", in, c.SHA256)
	for _, kv := range [][2]string{
		{"subject", c.Subject},
		{"issuer", c.Issuer},
		{"emails", strings.Join(termsafe.All(c.Emails), ", ")},
		{"not_before", c.NotBefore},
		{"not_after", c.NotAfter},
		{"key", c.Key},
		{"can_encrypt", fmt.Sprint(c.CanEncrypt)},
		{"can_sign", fmt.Sprint(c.CanSign)},
		{"verdict", string(c.Verdict)},
		{"reasons", strings.Join(c.Reasons, ", ")},
	} {
		fmt.Fprintf(w, "%s  %-11s %s\n", in, kv[0], termsafe.String(kv[1]))
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "%s  note        %s\n", in, termsafe.String(n))
	}
}
