// Package inspect analyses certificate files the way `smimesync inspect`
// shows them: every certificate, S/MIME blob and LDIF entry in a file, each
// with the verdict of a [smimesync.Policy].
//
// The types marshal to the JSON document of `smimesync inspect --json`; their
// key names are part of the interface (scripts rely on them).
package inspect

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// ErrNoPEMBlock: a PEM file holds no CERTIFICATE, PKCS7 or CMS block.
var ErrNoPEMBlock = errors.New("no CERTIFICATE, PKCS7 or CMS block in the PEM file")

// Verdict is the policy's word on a certificate, blob or value.
type Verdict string

// The verdicts.
const (
	Keep Verdict = "keep"
	Drop Verdict = "drop"
)

func verdict(keep bool) Verdict {
	if keep {
		return Keep
	}
	return Drop
}

// Kind says what a file holds.
type Kind string

// The kinds of file.
const (
	KindCertificate Kind = "certificate"
	KindPKCS7       Kind = "pkcs7"
	KindLDIF        Kind = "ldif"
)

// Document is the whole `inspect --json` output: one [File] per path.
type Document struct {
	Files []File `json:"files"`
}

// File is what one file holds. A file that cannot be read, or a part of it
// that cannot be parsed, is named in Error; the parts that could be read are
// still shown.
type File struct {
	Path  string `json:"path"`
	Kind  Kind   `json:"kind,omitempty"`
	Error string `json:"error,omitempty"`
	// Certificates: the certificate (kind certificate) or the blob's
	// certificates (kind pkcs7).
	Certificates []Certificate `json:"certificates,omitempty"`
	// Blob is set for kind pkcs7 only.
	Blob *Blob `json:"blob,omitempty"`
	// Entries is set for kind ldif only.
	Entries []Entry `json:"entries,omitempty"`
}

// Certificate is one certificate with the policy's verdict.
type Certificate struct {
	SHA256     string   `json:"sha256"`
	Subject    string   `json:"subject"`
	Issuer     string   `json:"issuer"`
	Serial     string   `json:"serial"`
	Emails     []string `json:"emails"`
	NotBefore  string   `json:"not_before"` // RFC 3339, UTC
	NotAfter   string   `json:"not_after"`  // RFC 3339, UTC
	Key        string   `json:"key"`
	CanEncrypt bool     `json:"can_encrypt"`
	CanSign    bool     `json:"can_sign"`
	CA         bool     `json:"ca,omitempty"`
	Verdict    Verdict  `json:"verdict"`
	Reasons    []string `json:"reasons"`
	Notes      []string `json:"notes,omitempty"`
}

// Blob is one S/MIME (PKCS #7 / CMS) blob with the policy's verdict.
type Blob struct {
	SHA256            string   `json:"sha256"`
	BER               bool     `json:"ber"`
	Content           bool     `json:"content"`
	Signers           []Signer `json:"signers"`
	SignatureVerified bool     `json:"signature_verified"`
	SignatureError    string   `json:"signature_error,omitempty"`
	Rejected          []string `json:"rejected,omitempty"`
	Verdict           Verdict  `json:"verdict"`
	Reasons           []string `json:"reasons"`
	Notes             []string `json:"notes,omitempty"`
}

// Signer is one SignerInfo of a blob.
type Signer struct {
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

// Entry is one LDIF entry and the verdict on each of its values.
type Entry struct {
	DN        string   `json:"dn"`
	ID        string   `json:"id"`
	Addresses []string `json:"addresses"`
	Deleted   bool     `json:"deleted,omitempty"`
	Values    []Value  `json:"values"`
}

// Value is one certificate attribute value of an entry.
type Value struct {
	Attribute    string        `json:"attribute"`
	Index        int           `json:"index"`
	SHA256       string        `json:"sha256"`
	Verdict      Verdict       `json:"verdict"`
	Reasons      []string      `json:"reasons"`
	Notes        []string      `json:"notes,omitempty"`
	Error        string        `json:"error,omitempty"`
	Certificates []Certificate `json:"certificates,omitempty"`
	Blob         *Blob         `json:"blob,omitempty"`
}

// ReadFile reads the file at path and inspects it with pol (see [Bytes]).
// The error is nil when the whole file could be read and parsed; otherwise
// it joins every problem (each also named in File.Error), and the File still
// shows what could be read.
func ReadFile(ctx context.Context, pol *smimesync.Policy, path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{Path: path, Error: err.Error()}, err
	}
	return Bytes(ctx, pol, path, b)
}

// Bytes inspects b, the contents of the file named path: PEM (certificates,
// PKCS7 or CMS blocks), a DER certificate, a DER or BER CMS blob, LDIF, or
// anything else taken as a blob (perhaps Outlook's security-settings blob).
// Errors as for [ReadFile].
func Bytes(ctx context.Context, pol *smimesync.Policy, path string, b []byte) (File, error) {
	in := inspector{ctx: ctx, pol: pol, f: File{Path: path}}
	switch {
	case bytes.Contains(b, []byte("-----BEGIN ")):
		in.pem(b)
	case len(b) > 0 && b[0] == 0x30 && looksLikeCMS(b):
		in.f.Kind = KindPKCS7
		in.blob(b)
	case len(b) > 0 && b[0] == 0x30:
		in.f.Kind = KindCertificate
		c, err := smimesync.ParseCertificate(b)
		if err != nil {
			in.fail(err)
			break
		}
		in.f.Certificates = []Certificate{certificate(ctx, pol, c, nil)}
	case looksLikeLDIF(b):
		in.f.Kind = KindLDIF
		err := directory.ReadLDIF(ctx, bytes.NewReader(b), func(e *directory.Entry) error {
			in.f.Entries = append(in.f.Entries, entry(ctx, pol, e))
			return nil
		})
		if err != nil {
			in.fail(err)
		}
	default:
		in.f.Kind = KindPKCS7
		in.blob(b)
	}
	return in.f, errors.Join(in.errs...)
}

type inspector struct {
	ctx  context.Context
	pol  *smimesync.Policy
	f    File
	errs []error
}

func (in *inspector) fail(err error) {
	in.errs = append(in.errs, err)
	if in.f.Error == "" {
		in.f.Error = err.Error()
	} else {
		in.f.Error += "; " + err.Error()
	}
}

func (in *inspector) pem(b []byte) {
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if in.f.Kind == "" {
				in.f.Kind = KindCertificate
			}
			c, err := smimesync.ParseCertificate(blk.Bytes)
			if err != nil {
				in.fail(err)
				continue
			}
			in.f.Certificates = append(in.f.Certificates, certificate(in.ctx, in.pol, c, nil))
		case "PKCS7", "CMS":
			in.f.Kind = KindPKCS7
			in.blob(blk.Bytes)
		}
	}
	if in.f.Kind == "" && in.f.Error == "" {
		in.fail(ErrNoPEMBlock)
	}
}

func (in *inspector) blob(b []byte) {
	blob, err := smimesync.ParseSMIMECertificate(b)
	if err != nil {
		in.fail(err)
		return
	}
	in.f.Blob = blobOf(in.ctx, in.pol, blob, nil)
	for _, c := range blob.Certificates {
		in.f.Certificates = append(in.f.Certificates, certificate(in.ctx, in.pol, c, nil))
	}
}

// certificate shows c with the policy's verdict for a user who owns addrs
// (nil: no user, the address check is skipped).
func certificate(ctx context.Context, pol *smimesync.Policy, c *smimesync.Certificate, addrs []string) Certificate {
	reasons, notes := pol.CheckCertificate(ctx, c, addrs)
	return Certificate{
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

func blobOf(ctx context.Context, pol *smimesync.Policy, b *smimesync.Blob, addrs []string) *Blob {
	d := pol.CheckBlob(ctx, b, addrs)
	v := &Blob{
		SHA256:            b.SHA256.String(),
		BER:               b.BER,
		Content:           b.Content,
		Signers:           []Signer{},
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
		sv := Signer{Issuer: s.Issuer, Serial: s.Serial}
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

func entry(ctx context.Context, pol *smimesync.Policy, e *directory.Entry) Entry {
	ev := Entry{DN: e.DN, ID: e.ID, Addresses: nonNil(e.Addresses()), Deleted: e.Deleted, Values: []Value{}}
	verdicts := pol.Evaluate(ctx, e)
	for _, d := range verdicts.Decisions() {
		vv := Value{
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
			vv.Blob = blobOf(ctx, pol, d.Blob, addrs)
			for _, c := range d.Blob.Certificates {
				vv.Certificates = append(vv.Certificates, certificate(ctx, pol, c, addrs))
			}
		case d.Certificate != nil:
			// The value's verdict is the certificate's: it includes what
			// a certificate alone cannot show (a duplicate, the limit).
			cv := certificate(ctx, pol, d.Certificate, addrs)
			cv.Verdict, cv.Reasons, cv.Notes = vv.Verdict, vv.Reasons, vv.Notes
			vv.Certificates = []Certificate{cv}
		}
		ev.Values = append(ev.Values, vv)
	}
	return ev
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
