package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// The inspect --json document. Key names are part of the interface:
// scripts rely on them.
type inspectDoc struct {
	Files []inspectFile `json:"files"`
}

type inspectFile struct {
	Path  string `json:"path"`
	Kind  string `json:"kind,omitempty"` // certificate, pkcs7, ldif
	Error string `json:"error,omitempty"`
	// certificate: one; pkcs7: the blob's certificates.
	Certificates []certView `json:"certificates,omitempty"`
	// pkcs7 only.
	Blob *blobView `json:"blob,omitempty"`
	// ldif only.
	Entries []entryView `json:"entries,omitempty"`
}

type certView struct {
	SHA256     string   `json:"sha256"`
	Subject    string   `json:"subject"`
	Issuer     string   `json:"issuer"`
	Serial     string   `json:"serial"`
	Emails     []string `json:"emails"`
	NotBefore  string   `json:"not_before"`
	NotAfter   string   `json:"not_after"`
	Key        string   `json:"key"`
	CanEncrypt bool     `json:"can_encrypt"`
	CanSign    bool     `json:"can_sign"`
	CA         bool     `json:"ca,omitempty"`
	Verdict    string   `json:"verdict"`
	Reasons    []string `json:"reasons"`
	Notes      []string `json:"notes,omitempty"`
}

type blobView struct {
	SHA256            string       `json:"sha256"`
	BER               bool         `json:"ber"`
	Content           bool         `json:"content"`
	Signers           []signerView `json:"signers"`
	SignatureVerified bool         `json:"signature_verified"`
	SignatureError    string       `json:"signature_error,omitempty"`
	Rejected          []string     `json:"rejected,omitempty"`
	Verdict           string       `json:"verdict"`
	Reasons           []string     `json:"reasons"`
	Notes             []string     `json:"notes,omitempty"`
}

type signerView struct {
	Issuer       string   `json:"issuer,omitempty"`
	Serial       string   `json:"serial,omitempty"`
	SubjectKeyID string   `json:"subject_key_id,omitempty"`
	SHA256       string   `json:"sha256,omitempty"`
	Capabilities []string `json:"smime_capabilities,omitempty"`
	EncryptionTo string   `json:"encryption_key_preference,omitempty"`
	// SigningTime is the signer's signingTime attribute (RFC 3339, UTC).
	SigningTime string `json:"signing_time,omitempty"`
	// SigningTimeOutsideValidity: the signing time lies outside the
	// signer certificate's validity (a note, not a bad signature).
	SigningTimeOutsideValidity bool `json:"signing_time_outside_validity,omitempty"`
}

type entryView struct {
	DN        string      `json:"dn"`
	ID        string      `json:"id"`
	Addresses []string    `json:"addresses"`
	Deleted   bool        `json:"deleted,omitempty"`
	Values    []valueView `json:"values"`
}

type valueView struct {
	Attribute    string     `json:"attribute"`
	Index        int        `json:"index"`
	SHA256       string     `json:"sha256"`
	Verdict      string     `json:"verdict"`
	Reasons      []string   `json:"reasons"`
	Notes        []string   `json:"notes,omitempty"`
	Error        string     `json:"error,omitempty"`
	Certificates []certView `json:"certificates,omitempty"`
	Blob         *blobView  `json:"blob,omitempty"`
}

// cmdInspect prints every certificate in the named files with the default
// policy's verdict. A file that cannot be read is reported; the others
// still are, and the exit code is 1.
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
	doc := inspectDoc{Files: []inspectFile{}}
	failed := 0
	for _, path := range fs.Args() {
		f := inspectPath(ctx, pol, path)
		if f.Error != "" {
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

func inspectPath(ctx context.Context, pol *smimesync.Policy, path string) inspectFile {
	f := inspectFile{Path: path}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Error = err.Error()
		return f
	}
	switch {
	case bytes.Contains(b, []byte("-----BEGIN ")):
		inspectPEM(ctx, pol, b, &f)
	case len(b) > 0 && b[0] == 0x30 && looksLikeCMS(b):
		f.Kind = "pkcs7"
		inspectBlob(ctx, pol, b, &f)
	case len(b) > 0 && b[0] == 0x30:
		f.Kind = "certificate"
		c, err := smimesync.ParseCertificate(b)
		if err != nil {
			f.Error = err.Error()
			return f
		}
		f.Certificates = []certView{viewCert(ctx, pol, c, nil)}
	case looksLikeLDIF(b):
		f.Kind = "ldif"
		err := directory.ReadLDIF(ctx, bytes.NewReader(b), func(e *directory.Entry) error {
			f.Entries = append(f.Entries, viewEntry(ctx, pol, e))
			return nil
		})
		if err != nil {
			f.Error = err.Error()
		}
	default:
		// Not DER, not PEM, not LDIF: perhaps Outlook's security-settings
		// blob; the blob parser says what it is.
		f.Kind = "pkcs7"
		inspectBlob(ctx, pol, b, &f)
	}
	return f
}

func inspectPEM(ctx context.Context, pol *smimesync.Policy, b []byte, f *inspectFile) {
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if f.Kind == "" {
				f.Kind = "certificate"
			}
			c, err := smimesync.ParseCertificate(blk.Bytes)
			if err != nil {
				f.Error = join(f.Error, err.Error())
				continue
			}
			f.Certificates = append(f.Certificates, viewCert(ctx, pol, c, nil))
		case "PKCS7", "CMS":
			f.Kind = "pkcs7"
			inspectBlob(ctx, pol, blk.Bytes, f)
		}
	}
	if f.Kind == "" && f.Error == "" {
		f.Error = "no CERTIFICATE, PKCS7 or CMS block in the PEM file"
	}
}

func inspectBlob(ctx context.Context, pol *smimesync.Policy, b []byte, f *inspectFile) {
	blob, err := smimesync.ParseSMIMECertificate(b)
	if err != nil {
		f.Error = join(f.Error, err.Error())
		return
	}
	f.Blob = viewBlob(ctx, pol, blob, nil)
	for _, c := range blob.Certificates {
		f.Certificates = append(f.Certificates, viewCert(ctx, pol, c, nil))
	}
}

// viewCert shows c with the policy's verdict for a user who owns addrs (nil:
// no user, the address check is skipped).
func viewCert(ctx context.Context, pol *smimesync.Policy, c *smimesync.Certificate, addrs []string) certView {
	reasons, notes := pol.CheckCertificate(ctx, c, addrs)
	return certView{
		SHA256:     c.SHA256().String(),
		Subject:    c.Subject(),
		Issuer:     c.Issuer(),
		Serial:     c.Serial.String(),
		Emails:     nonNil(c.Emails),
		NotBefore:  c.NotBefore.UTC().Format(time.RFC3339),
		NotAfter:   c.NotAfter.UTC().Format(time.RFC3339),
		Key:        c.Key(),
		CanEncrypt: c.CanEncrypt,
		CanSign:    c.CanSign,
		CA:         c.IsCA,
		Verdict:    verdict(len(reasons) == 0),
		Reasons:    reasonStrings(reasons),
		Notes:      notes,
	}
}

func viewBlob(ctx context.Context, pol *smimesync.Policy, b *smimesync.Blob, addrs []string) *blobView {
	d := pol.CheckBlob(ctx, b, addrs)
	v := &blobView{
		SHA256:            b.SHA256.String(),
		BER:               b.BER,
		Content:           b.Content,
		Signers:           []signerView{},
		SignatureVerified: b.Verified,
		Verdict:           verdict(d.Keep),
		Reasons:           reasonStrings(d.Reasons),
		Notes:             d.Notes,
	}
	if b.VerifyError != nil {
		v.SignatureError = b.VerifyError.Error()
	}
	for _, err := range b.Rejected {
		v.Rejected = append(v.Rejected, err.Error())
	}
	for _, s := range b.Signers {
		sv := signerView{Issuer: s.Issuer, Serial: s.Serial}
		if len(s.SubjectKeyID) > 0 {
			sv.SubjectKeyID = fmt.Sprintf("%x", s.SubjectKeyID)
		}
		if s.Certificate != nil {
			sv.SHA256 = s.Certificate.SHA256().String()
		}
		for _, oid := range s.Capabilities {
			sv.Capabilities = append(sv.Capabilities, oid.String())
		}
		if p := s.EncryptionKeyPreference; p != nil {
			sv.EncryptionTo = fmt.Sprintf("%s serial %s (%s)", p.Issuer, p.Serial, p.Source)
		}
		if !s.SigningTime.IsZero() {
			sv.SigningTime = s.SigningTime.UTC().Format(time.RFC3339)
		}
		sv.SigningTimeOutsideValidity = s.SigningTimeOutsideValidity()
		v.Signers = append(v.Signers, sv)
	}
	return v
}

func viewEntry(ctx context.Context, pol *smimesync.Policy, e *directory.Entry) entryView {
	ev := entryView{DN: e.DN, ID: e.ID, Addresses: nonNil(e.Addresses()), Deleted: e.Deleted, Values: []valueView{}}
	verdicts := pol.Evaluate(ctx, e)
	for _, d := range verdicts.Decisions() {
		vv := valueView{
			Attribute: d.Attribute,
			Index:     d.Index,
			SHA256:    d.SHA256.String(),
			Verdict:   verdict(d.Keep),
			Reasons:   reasonStrings(d.Reasons),
			Notes:     d.Notes,
		}
		if d.Err != nil {
			vv.Error = d.Err.Error()
		}
		addrs := nonNil(e.Addresses())
		switch {
		case d.Blob != nil:
			vv.Blob = viewBlob(ctx, pol, d.Blob, addrs)
			for _, c := range d.Blob.Certificates {
				vv.Certificates = append(vv.Certificates, viewCert(ctx, pol, c, addrs))
			}
		case d.Certificate != nil:
			// The value's verdict is the certificate's: it includes what
			// a certificate alone cannot show (a duplicate, the limit).
			cv := viewCert(ctx, pol, d.Certificate, addrs)
			cv.Verdict, cv.Reasons, cv.Notes = vv.Verdict, vv.Reasons, vv.Notes
			vv.Certificates = []certView{cv}
		}
		ev.Values = append(ev.Values, vv)
	}
	return ev
}

func printInspectFile(w io.Writer, f inspectFile) {
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

func printBlob(w io.Writer, in string, b *blobView) {
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

func printCert(w io.Writer, in string, c certView) {
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
		{"verdict", c.Verdict},
		{"reasons", strings.Join(c.Reasons, ", ")},
	} {
		fmt.Fprintf(w, "%s  %-11s %s\n", in, kv[0], termSafe(kv[1]))
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "%s  note        %s\n", in, termSafe(n))
	}
}

// looksLikeCMS tells a ContentInfo (SEQUENCE whose first element is an OID)
// from a Certificate (SEQUENCE whose first element is a SEQUENCE).
func looksLikeCMS(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	off := 2
	switch l := b[1]; {
	case l == 0x80:
	case l&0x80 != 0:
		off += int(l & 0x7f)
	}
	return off < len(b) && b[off] == 0x06
}

func looksLikeLDIF(b []byte) bool {
	for _, line := range strings.SplitN(string(b[:min(len(b), 4096)]), "\n", 64) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(strings.ToLower(line), "dn:") {
			return true
		}
	}
	return false
}

func verdict(keep bool) string {
	if keep {
		return "keep"
	}
	return "drop"
}

func reasonStrings(rs []smimesync.Reason) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, string(r))
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
