// Package smimesync is the engine of smimesync: it parses the certificate
// values a directory holds, decides which of them each recipient should
// carry, and plans and applies the changes.
//
//   - [ParseCertificate] reads a userCertificate value (DER, or PEM) into a
//     [Certificate]: fingerprint, names, the addresses it covers, validity,
//     and whether it can encrypt or sign mail.
//   - [ParseSMIMECertificate] reads a userSMIMECertificate value: a CMS
//     SignedData in DER or BER, certificates-only or signed, into a [Blob]
//     with its certificates, signers, signed attributes and whether the
//     signature verifies. A certificate Go refuses does not sink the others.
//   - [Policy] decides per value, with a [Reason] for every drop; its zero
//     value is the sensible default.
//   - [Syncer] composes a directory.Source, a cloud.Sink, a Policy and a
//     [State]: [Syncer.Plan] decides and writes nothing, [Syncer.Apply]
//     writes what changed with bounded concurrency, behind a mass-change
//     [Guard], and returns a [Report].
//
// A pass's memory is bounded by its concurrency, not by the directory: a
// plan's rows and the values its writes send wait in a temporary file
// ([Plan.Rows]), the entries found unchanged on their [Memo] are only
// counted ([Plan.Unlisted]), and a [RecordStore] such as [BoltState] reads
// and saves only the records a pass touches.
//
// [Certificates] walks every certificate an entry carries, for audit tools
// that want the parser without a Policy or a Syncer.
//
// Certificate parsing stays in this package for now, on purpose. The
// parser's files (parse.go, cms.go, ber.go, blob.go, certificate.go,
// reason.go) import nothing else of the module, so an audit tool that
// imports smimesync for them pulls in no sink, no directory client and no
// state; the engine costs it only compile time. Its types (Certificate,
// Blob, Fingerprint, Reason, ParseError) are also the words of the engine's
// API (Decision, Value, Summary.Dropped, Policy.Check), so a separate
// package would have every caller import two packages for one plan, or
// this one re-export them. Because those files depend on nothing else
// here, moving them to their own package later is mechanical; it was not
// done while other changes to cms.go and policy.go are in flight.
//
// Errors are typed: a value that cannot be used is a [*ParseError] with its
// Reason and fingerprint; a tripped guard is a [*GuardError] wrapping
// [ErrGuardTripped]; a state that cannot be read wraps [ErrStateUnreadable].
// Nothing here logs unless a *slog.Logger is given.
package smimesync
