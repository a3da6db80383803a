package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/smallstep/pkcs7"
	"golang.org/x/sync/errgroup"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/ber"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// refTime is the synthetic directory's "now": certificate validity is
// drawn around it, and the policy judges at it (refClock, every Policy of
// the benchmark and its tests), so that a seed makes the same directory and
// the same decisions whatever the date of the run: the Samba OU seeded for
// a seed is kept for later runs and stays right. The blobs carry no signed
// attributes, so no signing time either. A fixed time, on purpose, rather
// than the test clock (internal/testclock): SMIMESYNC_TEST_CLOCK_SHIFT
// changes nothing here, and nothing here reads today's date.
var refTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// refClock is the policy's clock: refTime.
func refClock() time.Time { return refTime }

// keyPoolSize is how many RSA subject keys the users share: generating a
// key per certificate would dominate the set-up, and the parser's work does
// not depend on whose key it is.
const keyPoolSize = 4

// mailDomain is the users' mail domain.
const mailDomain = "contoso.com"

// certKind is what a synthetic certificate is made to be.
type certKind int

const (
	kindGood         certKind = iota // valid, for S/MIME, the user's address
	kindExpired                      // notAfter before refTime
	kindNotYetValid                  // notBefore after refTime
	kindWrongAddress                 // another user's address
	kindNotForSMIME                  // TLS server certificate (EKU serverAuth)
	kindSigningOnly                  // digitalSignature only: kept unless require_encryption
	kindDamaged                      // a good certificate cut in half: unparseable
)

// pickKind draws a certificate kind: 70% good, 14% expired, 4% not yet
// valid, 6% another user's address, 3% TLS-only, 2.8% signing-only, 0.2%
// damaged.
func pickKind(r *mrand.Rand) certKind {
	switch x := r.IntN(1000); {
	case x < 700:
		return kindGood
	case x < 840:
		return kindExpired
	case x < 880:
		return kindNotYetValid
	case x < 940:
		return kindWrongAddress
	case x < 970:
		return kindNotForSMIME
	case x < 998:
		return kindSigningOnly
	default:
		return kindDamaged
	}
}

// certCount draws how many userCertificate values a user has, 0 to 20:
// 10% none, 55% one, 20% two or three, 10% four to eight, 5% nine to
// twenty (a mean of about 2.4).
func certCount(r *mrand.Rand) int {
	switch x := r.IntN(100); {
	case x < 10:
		return 0
	case x < 65:
		return 1
	case x < 85:
		return 2 + r.IntN(2)
	case x < 95:
		return 4 + r.IntN(5)
	default:
		return 9 + r.IntN(12)
	}
}

// RecipientKind is what the synthetic tenant holds for a directory user.
type RecipientKind int

// The recipient kinds.
const (
	// RecipientMailbox is a cloud mailbox (the common case).
	RecipientMailbox RecipientKind = iota
	// RecipientMailUser is a mail user.
	RecipientMailUser
	// RecipientMailContact is a mail contact.
	RecipientMailContact
	// RecipientSynced is a directory-synced mailbox: not writable.
	RecipientSynced
	// RecipientNone: the tenant has no recipient for the user.
	RecipientNone
)

// DirStats counts what the generator made.
type DirStats struct {
	// Users is the number of users; Certificates their userCertificate
	// values, broken down by kind in Good … Damaged.
	Users        int `json:"users"`
	Certificates int `json:"certificates"`
	Good         int `json:"good"`
	Expired      int `json:"expired"`
	NotYetValid  int `json:"notYetValid"`
	WrongAddress int `json:"wrongAddress"`
	NotForSMIME  int `json:"notForSMIME"`
	SigningOnly  int `json:"signingOnly"`
	Damaged      int `json:"damaged"`
	// BERBlobs, DERBlobs and SettingsBlobs count the userSMIMECertificate
	// values: signed CMS blobs with indefinite and definite lengths, and
	// Outlook's security settings.
	BERBlobs      int `json:"berBlobs"`
	DERBlobs      int `json:"derBlobs"`
	SettingsBlobs int `json:"settingsBlobs"`
	// UsersOver15 have more userCertificate values than a recipient may
	// carry; MostPerUser is the most any user has; UsersWithNone have none.
	UsersOver15   int `json:"usersOver15"`
	MostPerUser   int `json:"mostPerUser"`
	UsersWithNone int `json:"usersWithNone"`
	// BlobBytes and CertBytes are the values' total sizes.
	BlobBytes int `json:"blobBytes"`
	CertBytes int `json:"certBytes"`
}

func (s *DirStats) add(o DirStats) {
	s.Users += o.Users
	s.Certificates += o.Certificates
	s.Good += o.Good
	s.Expired += o.Expired
	s.NotYetValid += o.NotYetValid
	s.WrongAddress += o.WrongAddress
	s.NotForSMIME += o.NotForSMIME
	s.SigningOnly += o.SigningOnly
	s.Damaged += o.Damaged
	s.BERBlobs += o.BERBlobs
	s.DERBlobs += o.DERBlobs
	s.SettingsBlobs += o.SettingsBlobs
	s.UsersOver15 += o.UsersOver15
	s.MostPerUser = max(s.MostPerUser, o.MostPerUser)
	s.UsersWithNone += o.UsersWithNone
	s.BlobBytes += o.BlobBytes
	s.CertBytes += o.CertBytes
}

// Generator makes the synthetic directory and tenant. What it makes for
// user i depends only on Seed and i: users can be made in any order, in
// parallel, and made again byte for byte.
type Generator struct {
	// Seed chooses the directory.
	Seed uint64
	// Users is the directory's size.
	Users int

	ca   *testpki.CA // Ed25519, derived from Seed
	keys []*rsa.PrivateKey
}

// NewGenerator derives the issuing CA (Ed25519, whose signatures are
// deterministic and cheap) and the pool of RSA-2048 subject keys (whose
// PKCS #1 v1.5 signatures on the userSMIMECertificate blobs are
// deterministic too) from seed.
func NewGenerator(seed uint64, users int) (*Generator, error) {
	if users <= 0 {
		return nil, fmt.Errorf("bench: %d users: want at least one", users)
	}
	g := &Generator{Seed: seed, Users: users}
	caKey, err := testpki.DeterministicKey(testpki.Ed25519, seedBytes(seed, "ca"))
	if err != nil {
		return nil, fmt.Errorf("bench: making the CA key: %w", err)
	}
	g.ca, err = testpki.New("", testpki.Key(caKey), testpki.SerialNumber(1),
		testpki.Subject(pkix.Name{CommonName: "Contoso Issuing CA (benchmark)", Organization: []string{"Contoso"}}),
		testpki.Validity(refTime.AddDate(-5, 0, 0), refTime.AddDate(10, 0, 0)))
	if err != nil {
		return nil, fmt.Errorf("bench: making the CA: %w", err)
	}
	g.keys = make([]*rsa.PrivateKey, keyPoolSize)
	var eg errgroup.Group
	for i := range g.keys {
		eg.Go(func() error {
			k, err := testpki.DeterministicKey(testpki.RSA, seedBytes(seed, "key", uint64(i)))
			if err != nil {
				return fmt.Errorf("bench: making key %d: %w", i, err)
			}
			g.keys[i] = k.(*rsa.PrivateKey)
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return g, nil
}

// Mail returns user i's address.
func (g *Generator) Mail(i int) string { return fmt.Sprintf("u%06d@%s", i, mailDomain) }

// guid returns a version-4 GUID string for label and i.
func (g *Generator) guid(label string, i int) string {
	b := seedBytes(g.Seed, label, uint64(i))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s, err := directory.FormatGUID(b[:16])
	if err != nil {
		panic(err) // 16 bytes always format
	}
	return s
}

// Recipient returns what the tenant holds for user i: 1% nothing, 1.5%
// a directory-synced mailbox, 5% a mail user, 2% a mail contact, the rest
// cloud mailboxes.
func (g *Generator) Recipient(i int) RecipientKind {
	switch x := newRand(g.Seed, "tenant", uint64(i)).IntN(1000); {
	case x < 10:
		return RecipientNone
	case x < 25:
		return RecipientSynced
	case x < 75:
		return RecipientMailUser
	case x < 95:
		return RecipientMailContact
	default:
		return RecipientMailbox
	}
}

// RecipientGUID returns the tenant's object id for user i's recipient.
func (g *Generator) RecipientGUID(i int) string { return g.guid("recipient", i) }

// Changed picks n users to change for the delta pass, spread over the
// directory: each has a cloud mailbox or mail user (writable, and an Entra
// user too) and at least one userCertificate value (so that restoring it
// on an LDAP server is a replace, never the removal of an absent
// attribute).
func (g *Generator) Changed(n int) ([]int, error) {
	if n > g.Users {
		return nil, fmt.Errorf("bench: %d changes in a directory of %d users", n, g.Users)
	}
	var out []int
	taken := map[int]bool{}
	for k := range n {
		start := (2*k + 1) * g.Users / (2 * n)
		found := false
		for d := range g.Users {
			i := (start + d) % g.Users
			if k := g.Recipient(i); taken[i] || k != RecipientMailbox && k != RecipientMailUser || certCount(newRand(g.Seed, "user", uint64(i))) == 0 {
				continue
			}
			taken[i], found = true, true
			out = append(out, i)
			break
		}
		if !found {
			return nil, fmt.Errorf("bench: only %d of %d users can be changed in a directory of %d", len(out), n, g.Users)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Entry makes user i; changed makes the delta pass's variant, which holds
// one more good certificate (the newest, so the policy keeps it).
func (g *Generator) Entry(i int, changed bool) (*directory.Entry, DirStats, error) {
	var st DirStats
	st.Users = 1
	r := newRand(g.Seed, "user", uint64(i))
	k := certCount(r)
	mail := g.Mail(i)
	e := &directory.Entry{
		ID:                g.guid("user", i),
		DN:                fmt.Sprintf("CN=User %06d,OU=Staff,DC=contoso,DC=com", i),
		UserPrincipalName: mail,
		Mail:              mail,
		ProxyAddresses:    []string{"SMTP:" + mail, fmt.Sprintf("smtp:user.%06d@contoso.mail.onmicrosoft.com", i)},
	}
	var newest *issued
	for j := range k {
		kind := pickKind(r)
		c, err := g.issue(i, uint64(j), kind, r)
		if err != nil {
			return nil, st, fmt.Errorf("bench: user %d certificate %d: %w", i, j, err)
		}
		e.UserCertificate = append(e.UserCertificate, c.der)
		st.count(kind, len(c.der))
		if kind == kindGood && (newest == nil || c.notAfter.After(newest.notAfter)) {
			newest = c
		}
	}
	st.Certificates = k
	st.MostPerUser = k
	if k == 0 {
		st.UsersWithNone = 1
	}
	if k > 15 {
		st.UsersOver15 = 1
	}
	// userSMIMECertificate: 6% a BER blob, 2% a DER blob (both signed by
	// the user's newest good certificate), 1% Outlook's security-settings
	// blob.
	switch x := r.IntN(1000); {
	case x < 80 && newest != nil:
		ber := x < 60
		b, err := g.blob(newest, ber)
		if err != nil {
			return nil, st, fmt.Errorf("bench: user %d blob: %w", i, err)
		}
		e.UserSMIMECertificate = append(e.UserSMIMECertificate, b)
		st.BlobBytes += len(b)
		if ber {
			st.BERBlobs++
		} else {
			st.DERBlobs++
		}
	case x >= 80 && x < 90:
		e.UserSMIMECertificate = append(e.UserSMIMECertificate, securitySettings)
		st.SettingsBlobs++
	}
	if changed {
		c, err := g.issue(i, 1_000_000, kindGood, newRand(g.Seed, "changed", uint64(i)))
		if err != nil {
			return nil, st, fmt.Errorf("bench: user %d changed certificate: %w", i, err)
		}
		// Valid the longest: the policy keeps it even at the value limit.
		e.UserCertificate = append(e.UserCertificate, c.der)
	}
	return e, st, nil
}

func (s *DirStats) count(k certKind, n int) {
	s.CertBytes += n
	switch k {
	case kindGood:
		s.Good++
	case kindExpired:
		s.Expired++
	case kindNotYetValid:
		s.NotYetValid++
	case kindWrongAddress:
		s.WrongAddress++
	case kindNotForSMIME:
		s.NotForSMIME++
	case kindSigningOnly:
		s.SigningOnly++
	case kindDamaged:
		s.Damaged++
	}
}

// securitySettings is a userSMIMECertificate value as Outlook writes its
// "security settings": tag-length-value records, not ASN.1 (its first byte
// is not 0x30). smimesync drops it with the reason security-settings.
var securitySettings = []byte{
	0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, // version
	0x06, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, // default settings
	0x02, 0x00, 0x0c, 0x00, 'B', 0x00, 'e', 0x00, 'n', 0x00, 0x00, 0x00, // name
}

// issued is one made certificate.
type issued struct {
	der      []byte
	key      *rsa.PrivateKey
	notAfter time.Time
}

// issue makes certificate j of user i of the given kind, its randomness
// drawn from r.
func (g *Generator) issue(i int, j uint64, kind certKind, r *mrand.Rand) (*issued, error) {
	var sn [16]byte
	for k := range sn {
		sn[k] = byte(r.UintN(256))
	}
	sn[0] = sn[0]&0x7f | 0x01 // positive, 16 bytes
	key := g.keys[r.IntN(len(g.keys))]
	day := 24 * time.Hour
	notBefore := refTime.Add(-time.Duration(30+r.IntN(700)) * day)
	notAfter := refTime.Add(time.Duration(30+r.IntN(1000)) * day)
	mail := g.Mail(i)
	opts := []testpki.Option{
		testpki.Serial(new(big.Int).SetBytes(sn[:])),
		testpki.Subject(pkix.Name{CommonName: fmt.Sprintf("User %06d", i), Organization: []string{"Contoso"}}),
		testpki.Key(key),
	}
	usage := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	switch kind {
	case kindExpired:
		notAfter = refTime.Add(-time.Duration(1+r.IntN(1500)) * day)
		notBefore = notAfter.Add(-365 * day)
	case kindNotYetValid:
		notBefore = refTime.Add(time.Duration(1+r.IntN(60)) * day)
		notAfter = notBefore.Add(730 * day)
	case kindWrongAddress:
		if g.Users > 1 {
			mail = g.Mail((i + 1 + r.IntN(g.Users-1)) % g.Users)
		} else {
			mail = "someone@fabrikam.example"
		}
	case kindNotForSMIME:
		opts = append(opts, testpki.ExtKeyUsage(x509.ExtKeyUsageServerAuth), testpki.DNSName(fmt.Sprintf("host%06d.%s", i, mailDomain)))
	case kindSigningOnly:
		usage = x509.KeyUsageDigitalSignature
	}
	if j == 1_000_000 { // the changed variant's certificate: the newest
		notAfter = refTime.Add(1500 * day)
	}
	c, err := g.ca.Issue(append(opts, testpki.KeyUsage(usage), testpki.Validity(notBefore, notAfter), testpki.Email(mail))...)
	if err != nil {
		return nil, err
	}
	der := c.DER
	if kind == kindDamaged {
		der = der[:len(der)/2]
	}
	return &issued{der: der, key: key, notAfter: notAfter}, nil
}

// blob makes a userSMIMECertificate value: a CMS SignedData holding c and
// the CA, signed with c's key, without signed attributes (so that it is
// deterministic: pkcs7 would add the signing time), and re-encoded with
// indefinite lengths when ber is set.
func (g *Generator) blob(c *issued, indefinite bool) ([]byte, error) {
	cert, err := x509.ParseCertificate(c.der)
	if err != nil {
		return nil, err
	}
	sd, err := pkcs7.NewSignedData([]byte("S/MIME capabilities"))
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.SignWithoutAttr(cert, c.key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	sd.AddCertificate(g.ca.Cert)
	der, err := sd.Finish()
	if err != nil {
		return nil, err
	}
	if !indefinite {
		return der, nil
	}
	return ber.Indefinite(der, 3)
}

// span is where a record lies in an LDIF file.
type span struct{ start, end int64 }

// LDIFFile is a written synthetic directory.
type LDIFFile struct {
	// Path is the file.
	Path string
	// Size is its size in bytes.
	Size int64
	// Stats counts what it holds.
	Stats DirStats
	// spans locates the records of the users asked for.
	spans map[int]span
}

// ldifRecord returns e as one LDIF record (a blank line, then its lines),
// as WriteLDIF writes it after its version line.
func ldifRecord(e *directory.Entry) ([]byte, error) {
	var buf bytes.Buffer
	if err := directory.WriteLDIF(&buf, e); err != nil {
		return nil, err
	}
	rec, ok := bytes.CutPrefix(buf.Bytes(), []byte("version: 1\n"))
	if !ok {
		return nil, errors.New("bench: WriteLDIF did not start with its version line")
	}
	return rec, nil
}

// genChunk is how many users are made in parallel before they are written
// in order.
const genChunk = 512

// forEachUser makes users 0..Users-1 in parallel, a chunk at a time, and
// hands them to fn in order.
func (g *Generator) forEachUser(ctx context.Context, fn func(i int, e *directory.Entry, st DirStats) error) error {
	entries := make([]*directory.Entry, genChunk)
	stats := make([]DirStats, genChunk)
	for start := 0; start < g.Users; start += genChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+genChunk, g.Users)
		var eg errgroup.Group
		eg.SetLimit(runtime.GOMAXPROCS(0))
		for i := start; i < end; i++ {
			eg.Go(func() error {
				e, st, err := g.Entry(i, false)
				entries[i-start], stats[i-start] = e, st
				return err
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
		for i := start; i < end; i++ {
			if err := fn(i, entries[i-start], stats[i-start]); err != nil {
				return err
			}
			entries[i-start] = nil
		}
	}
	return nil
}

// WriteLDIF writes the directory to path and remembers where the records
// of the users in track lie.
func (g *Generator) WriteLDIF(ctx context.Context, path string, track []int) (*LDIFFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	out := &LDIFFile{Path: path, spans: map[int]span{}}
	want := map[int]bool{}
	for _, i := range track {
		want[i] = true
	}
	n, _ := bw.WriteString("version: 1\n")
	off := int64(n)
	err = g.forEachUser(ctx, func(i int, e *directory.Entry, st DirStats) error {
		rec, err := ldifRecord(e)
		if err != nil {
			return err
		}
		if want[i] {
			out.spans[i] = span{off, off + int64(len(rec))}
		}
		if _, err := bw.Write(rec); err != nil {
			return err
		}
		off += int64(len(rec))
		out.Stats.add(st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	out.Size = off
	return out, nil
}

// WriteChanged writes a copy of the LDIF file to path in which the tracked
// users are replaced by their changed variants, copying every other record
// as it is.
func (g *Generator) WriteChanged(src *LDIFFile, path string) error {
	in, err := os.Open(src.Path)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	users := make([]int, 0, len(src.spans))
	for i := range src.spans {
		users = append(users, i)
	}
	slices.SortFunc(users, func(a, b int) int { return int(src.spans[a].start - src.spans[b].start) })
	bw := bufio.NewWriterSize(f, 1<<20)
	var pos int64
	for _, i := range users {
		sp := src.spans[i]
		if _, err := io.CopyN(bw, in, sp.start-pos); err != nil {
			return fmt.Errorf("bench: copying %s: %w", src.Path, err)
		}
		if _, err := in.Seek(sp.end, io.SeekStart); err != nil {
			return err
		}
		pos = sp.end
		e, _, err := g.Entry(i, true)
		if err != nil {
			return err
		}
		rec, err := ldifRecord(e)
		if err != nil {
			return err
		}
		if _, err := bw.Write(rec); err != nil {
			return err
		}
	}
	if _, err := io.Copy(bw, in); err != nil {
		return fmt.Errorf("bench: copying %s: %w", src.Path, err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}
