// Module smimesync keeps users' S/MIME certificates in Microsoft 365 true to
// what the on-premises directory holds.
//
// A sender can encrypt mail to a colleague only if the colleague's public
// certificate is in the Global Address List. On premises the certificates
// live in the directory: each user's userCertificate (DER X.509 values) and
// userSMIMECertificate (a CMS SignedData blob that Outlook publishes).
// smimesync reads them, parses and vets every value (BER and DER, expiry,
// key usage, address, chain, revocation), chooses what each recipient should
// carry, and publishes exactly that: it plans before it writes, writes only
// what changed, stops before mass removals, and reports every decision with
// its reason.
//
// # Packages
//
//   - [github.com/smimesync/go-smimesync/smimesync]: certificate and blob
//     parsing, the [github.com/smimesync/go-smimesync/smimesync.Policy] that chooses what to keep, the
//     [github.com/smimesync/go-smimesync/smimesync.Syncer] that plans and applies, and the State it keeps
//     between runs.
//   - [github.com/smimesync/go-smimesync/directory]: the directory.Source
//     seam and the Entry it yields; an LDIF source. Its ldapsource
//     sub-package reads Active Directory and OpenLDAP (paging, range
//     retrieval, DirSync and content-sync deltas, LDAPS).
//   - [github.com/smimesync/go-smimesync/cloud]: the cloud.Sink seam and a
//     file sink. Sub-packages publish to Exchange Online (exchange) and to
//     Entra ID through Microsoft Graph (graph), each with an emulator for
//     tests, and azauth builds their tokens.
//   - examples/smimesync: the example binary for admins; examples/customsink
//     shows a program of your own with a sink of its own.
//
// # Embedding
//
// A program composes a source, a sink, a policy and a state:
//
//	s := &smimesync.Syncer{
//		Source: &directory.LDIFFile{Path: "users.ldif"},
//		Sink:   &cloud.FileSink{Path: "published.json"},
//		Policy: &smimesync.Policy{},                // the defaults: valid, usable, the user's, at most 15
//		State:  &smimesync.BoltState{Path: "state.db"},
//		Logger: slog.Default(),
//	}
//	plan, err := s.Plan(ctx) // writes nothing
//	if err != nil { … }
//	report, err := s.Apply(ctx, plan)
package smimesync
