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
// Errors are typed: a value that cannot be used is a [*ParseError] with its
// Reason and fingerprint; a tripped guard is a [*GuardError] wrapping
// [ErrGuardTripped]; a state that cannot be read wraps [ErrStateUnreadable].
// Nothing here logs unless a *slog.Logger is given.
package smimesync
