package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"slices"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
)

// confirmWrites is how many writes of a run ReadBackAuto confirms by
// reading them back.
const confirmWrites = 3

// Current reads the recipient's certificates, trying in this order:
//
//  1. Get-Mailbox, Get-MailUser or Get-MailContact through InvokeCommand,
//     asked for in CLIXML (X-ResponseFormat: clixml, X-SerializationLevel:
//     Partial), where byte arrays are base64 <BA> elements. It comes first
//     because it is the module's own way of reading these cmdlets, it is
//     one request, and it serves all three kinds of recipient.
//  2. For a mailbox, when the CLIXML answer carries no bytes, the REST
//     entity GET /adminapi/beta/{tenant}/Mailbox('{id}'), whose schema
//     types the certificates as ByteArrayType ({"Data":[…]}). It comes
//     second because only mailboxes have it and the property names of its
//     answer are not confirmed.
//  3. Otherwise the answer is undecodable (the JSON form's "System.Byte[]",
//     a missing property): Current returns an error wrapping
//     [cloud.ErrUnreadable], never values it cannot trust, and the caller
//     relies on what it last published. It then stops asking for
//     IndexTTL.
//
// ReadBack "never" answers [cloud.ErrUnreadable] without a request. A
// recipient that no longer exists gives an error wrapping
// [cloud.ErrNotFound].
func (s *Sink) Current(ctx context.Context, r *cloud.Recipient) (cloud.Certificates, error) {
	if s.readBack == ReadBackNever {
		return cloud.Certificates{}, fmt.Errorf("exchange: %s: read-back disabled (read_back: never): %w", name(r), cloud.ErrUnreadable)
	}
	if at := s.unreadableAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < s.ttl {
		// The tenant was seen to render certificates without their bytes:
		// asking again for every recipient would only cost requests.
		// Ask again after the index's TTL.
		return cloud.Certificates{}, fmt.Errorf("exchange: %s: the service does not return certificate bytes (seen %s ago): %w",
			name(r), time.Since(time.Unix(0, at)).Round(time.Second), cloud.ErrUnreadable)
	}
	noun, err := s.noun(ctx, r)
	if err != nil {
		return cloud.Certificates{}, err
	}
	c, err := s.read(ctx, r, noun)
	if errors.Is(err, errUndecodable) {
		if s.unreadableAt.Swap(time.Now().UnixNano()) == 0 {
			s.log.Info("exchange: the service does not return certificate bytes; relying on what was last published", "recipient", name(r), "detail", err.Error())
		}
		return cloud.Certificates{}, fmt.Errorf("exchange: %s: %w: %w", name(r), cloud.ErrUnreadable, err)
	}
	return c, err
}

// read reads r's certificates by CLIXML, then the entity (see Current).
// An answer without bytes gives an error wrapping errUndecodable.
func (s *Sink) read(ctx context.Context, r *cloud.Recipient, noun string) (cloud.Certificates, error) {
	var first error
	if at := s.clixmlUndecodableAt.Load(); at == 0 || time.Since(time.Unix(0, at)) >= s.ttl || noun != "Mailbox" {
		c, err := s.readCLIXML(ctx, r, noun)
		if !errors.Is(err, errUndecodable) {
			return c, err
		}
		if noun != "Mailbox" {
			return cloud.Certificates{}, err
		}
		s.clixmlUndecodableAt.Store(time.Now().UnixNano())
		first = err
	}
	c, err := s.readEntity(ctx, r)
	if err == nil {
		return c, nil
	}
	var ce *CmdletError
	if errors.As(err, &ce) && ce.Status != http.StatusUnauthorized && ce.Status/100 == 4 && !ce.Is(cloud.ErrNotFound) {
		// The entity path refused the request itself: this tenant has no
		// such read-back.
		err = fmt.Errorf("%w: the Mailbox entity is not available: %w", errUndecodable, err)
	}
	if first != nil && errors.Is(err, errUndecodable) {
		return cloud.Certificates{}, fmt.Errorf("in CLIXML, Get-%s: %w; %w", noun, first, err)
	}
	return cloud.Certificates{}, err
}

// readCLIXML reads r with its Get-* cmdlet in CLIXML.
func (s *Sink) readCLIXML(ctx context.Context, r *cloud.Recipient, noun string) (cloud.Certificates, error) {
	var (
		c     cloud.Certificates
		found bool
	)
	cmdlet := "Get-" + noun
	err := s.invokeAs(ctx, formatCLIXML, cmdlet, map[string]any{"Identity": r.ID}, false, func(a *answer) error {
		if found {
			return nil
		}
		objs, items, err := clixmlObjects(a)
		if err != nil {
			return err
		}
		if len(objs) > 0 {
			found = true
			refs := map[string]*clixmlNode{}
			for i := range objs {
				if id := objs[i].attr("RefId"); id != "" {
					refs[id] = &objs[i]
				}
				clixmlRefs(&objs[i], refs)
			}
			if c.UserCertificate, err = decodeCLIXMLByteArrays(&objs[0], "UserCertificate", refs); err != nil {
				return err
			}
			c.UserSMIMECertificate, err = decodeCLIXMLByteArrays(&objs[0], "UserSMimeCertificate", refs)
			return err
		}
		if len(items) > 0 {
			// A JSON answer after all.
			found = true
			c, err = decodeJSONRecipient(items[0])
			return err
		}
		return nil
	})
	if err != nil {
		return cloud.Certificates{}, withRecipient(err, cmdlet, r)
	}
	if !found {
		return cloud.Certificates{}, fmt.Errorf("exchange: %s %s: empty answer: %w", cmdlet, name(r), cloud.ErrNotFound)
	}
	return c, nil
}

// entityPath returns the path and query of r's Mailbox entity.
//
// Unconfirmed (FACTS.md: public admin tools call the entity; its schema
// types UserCertificate and UserSMimeCertificate as
// Collection(Exchange.ByteArrayType)): that $select with these names
// returns them. This is the only place that builds the request.
func (s *Sink) entityPath(r *cloud.Recipient) string {
	key := "'" + strings.ReplaceAll(r.ID, "'", "''") + "'"
	return "/adminapi/beta/" + s.tenant + "/Mailbox(" + neturl.PathEscape(key) + ")?$select=UserCertificate,UserSMimeCertificate"
}

// readEntity reads r's Mailbox entity.
func (s *Sink) readEntity(ctx context.Context, r *cloud.Recipient) (cloud.Certificates, error) {
	q := &request{method: http.MethodGet, url: s.endpoint() + s.entityPath(r), cmdlet: "GET Mailbox", identity: r.ID}
	a, err := s.call(ctx, q)
	if err != nil {
		return cloud.Certificates{}, err
	}
	c, err := decodeJSONRecipient(a.Raw)
	if err != nil {
		return cloud.Certificates{}, withRecipient(err, "the Mailbox entity", r)
	}
	return c, nil
}

// decodeJSONRecipient reads the certificate properties of a recipient or
// entity in JSON; both must be present.
func decodeJSONRecipient(raw json.RawMessage) (cloud.Certificates, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return cloud.Certificates{}, fmt.Errorf("%w: not a JSON object: %v", errUndecodable, err)
	}
	var c cloud.Certificates
	for _, p := range []struct {
		attr string
		dst  *[][]byte
	}{{"UserCertificate", &c.UserCertificate}, {"UserSMimeCertificate", &c.UserSMIMECertificate}} {
		v, ok := obj[p.attr]
		if !ok {
			return cloud.Certificates{}, fmt.Errorf("%w: %s is not in the answer", errUndecodable, p.attr)
		}
		vals, err := decodeByteArrays(v)
		if err != nil {
			return cloud.Certificates{}, fmt.Errorf("%w: %s: %w", errUndecodable, p.attr, err)
		}
		*p.dst = vals
	}
	return c, nil
}

// withRecipient names the call and recipient in a decoding error; service
// errors (which name them already) are returned as they are.
func withRecipient(err error, what string, r *cloud.Recipient) error {
	var ce *CmdletError
	if errors.As(err, &ce) || !errors.Is(err, errUndecodable) {
		return err
	}
	return fmt.Errorf("exchange: %s %s: %w", what, name(r), err)
}

// confirm reads back a write of c to r and compares. The caller holds
// s.confirmMu. A mismatch is returned (and kept, refusing later writes); a
// read-back that cannot be decoded ends the confirmations, since none can
// be made; a read-back that fails otherwise leaves the write standing.
func (s *Sink) confirm(ctx context.Context, r *cloud.Recipient, noun string, c cloud.Certificates) error {
	got, err := s.read(ctx, r, noun)
	switch {
	case errors.Is(err, errUndecodable):
		if s.confirmLeft.Swap(0) > 0 {
			s.log.Warn("exchange: writes cannot be confirmed: the service does not return certificate bytes", "recipient", name(r), "detail", err.Error())
		}
		return nil
	case err != nil:
		s.log.Warn("exchange: could not read a write back to confirm it", "recipient", name(r), "err", err)
		return nil
	}
	for _, a := range []struct {
		attr       string
		wrote, got [][]byte
	}{
		{"UserCertificate", c.UserCertificate, got.UserCertificate},
		{"UserSMimeCertificate", c.UserSMIMECertificate, got.UserSMIMECertificate},
	} {
		w, g := fingerprintsOf(a.wrote), fingerprintsOf(a.got)
		if !slices.Equal(w, g) {
			m := &ReadBackMismatchError{Recipient: name(r), Attribute: a.attr, Wrote: w, Read: g}
			s.mismatch.CompareAndSwap(nil, m)
			s.confirmLeft.Store(0)
			s.log.Error("exchange: a write reads back other bytes than were written; refusing further writes", "recipient", name(r), "attribute", a.attr)
			return m
		}
	}
	s.stats.confirmed.Add(1)
	if s.confirmLeft.Add(-1) == 0 {
		s.log.Info("exchange: the first writes read back as written", "confirmed", confirmWrites)
	}
	return nil
}

// fingerprintsOf returns the sorted SHA-256 fingerprints of vals in hex.
func fingerprintsOf(vals [][]byte) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		h := sha256.Sum256(v)
		out = append(out, hex.EncodeToString(h[:]))
	}
	slices.SortFunc(out, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	return out
}
