// Package graph is smimesync's sink for Microsoft Entra ID through
// Microsoft Graph: it resolves directory entries to Entra users and writes
// the certificate-based authentication bindings
// (authorizationInfo.certificateUserIds) of the certificates the policy
// keeps. It is the only package of the module that imports msgraph-sdk-go,
// and only its users and models packages and its core.
//
// Graph cannot write userCertificate or userSMIMECertificate (FACTS.md);
// those reach Exchange Online through the exchange sink. What Graph adds is
// finding the user (onPremisesImmutableId, userPrincipalName, mail,
// proxyAddresses), telling directory-synced users apart
// (onPremisesSyncEnabled), and the bindings that let the same certificates
// sign in.
//
// The sink removes only the certificateUserIds values it manages (see
// [CertificateUserIDs]): by default, the issuer-and-serial values of the
// CAs whose certificates it is writing to that user; values of other CAs,
// of other formats and of other mappings are kept. So when a user loses all
// certificates, the old bindings stay unless ManagedIssuers names their CA
// (or ManageAllOfFormat is set). Before each PATCH, which replaces the
// whole list, the sink reads the user's current list afresh, so a change an
// administrator made since the lookup is kept.
//
// Values are spelt as Microsoft's Entra PowerShell module spells them (see
// [CertificateUserID]); an existing value that is a derived one in another
// case (lower-case hex) is replaced by that spelling once, not kept beside
// it. The bindings take effect only where the tenant's certificate-based
// authentication policy maps the format's certificate field to
// certificateUserIds (a username binding, x509CertificateUserBinding);
// the sink cannot see or change that policy.
//
// The client is msgraph-sdk-go's request builders on a kiota request
// adapter built here (see [New]): azidentity tokens for the configured
// national cloud, no request compression, and a retry handler that honours
// Retry-After, backs off with jitter, bounds each attempt with a timeout,
// and keeps one client-request-id across the retries of a call. Lookups
// and writes of concurrent calls are packed 20 to a $batch; an item
// throttled inside a batch is resubmitted after its Retry-After, and the
// sink keeps its writes within Graph's documented budget (3,000 per 150 s
// per app and tenant). The token goes only to the configured Graph
// endpoint's scheme, host and port (see azauth.TokenHosts): a users page
// whose @odata.nextLink names another host is refused, not followed, and
// redirects are never followed.
//
// The graphtest sub-package is a Graph emulator for tests; it does not
// import msgraph-sdk-go, so other packages can use it cheaply.
package graph
