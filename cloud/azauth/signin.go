package azauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// ErrSignIn is wrapped by a [*SignInError]: Microsoft Entra refused to
// issue a token, or could not be reached to ask for one. No call to the
// service can succeed until it is mended, so it concerns the whole run, not
// one recipient.
var ErrSignIn = errors.New("azauth: sign-in failed")

// SignInError is a failed token request, told in one line: the AADSTS
// code Microsoft Entra gave, its description's first sentence, and what to
// do about it. It wraps [ErrSignIn] and the credential's own error (an
// *azidentity.AuthenticationFailedError, whose text runs to many lines).
type SignInError struct {
	// Code is the AADSTS code ("AADSTS7000215"), or "" when the login
	// endpoint gave none (it could not be reached, or answered otherwise).
	Code string
	// OAuthError is the OAuth error ("invalid_client"), when given.
	OAuthError string
	// Description is the first line of the error description, without
	// the code, trace and correlation ids.
	Description string
	// Fix says what to change, from [SignInFixes]; "" when the code is
	// not in the table.
	Fix string
	// Err is the credential's error.
	Err error
}

// Error returns one line: "sign-in refused: AADSTS7000215: Invalid
// client secret provided; fix: …".
func (e *SignInError) Error() string {
	var b strings.Builder
	if e.Code != "" || e.OAuthError != "" {
		b.WriteString("sign-in refused: ")
	} else {
		b.WriteString("sign-in failed: ")
	}
	if e.Code != "" {
		b.WriteString(e.Code + ": ")
	} else if e.OAuthError != "" {
		b.WriteString(e.OAuthError + ": ")
	}
	b.WriteString(e.Description)
	if e.Fix != "" {
		b.WriteString("; fix: " + e.Fix)
	}
	return b.String()
}

// Unwrap returns [ErrSignIn] and the credential's error.
func (e *SignInError) Unwrap() []error { return []error{ErrSignIn, e.Err} }

// SignInFixes maps the AADSTS codes an application signing in with client
// credentials is most likely to meet to a one-line fix. The codes and their
// meaning are those of Microsoft's reference, "Microsoft Entra
// authentication and authorization error codes"
// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes);
// Microsoft says codes may change, so an unknown code is reported with the
// service's own description and a pointer to https://login.microsoftonline.com/error.
var SignInFixes = map[string]string{
	// InvalidClientSecretProvided.
	"AADSTS7000215": "the client secret is wrong: use the secret's Value (not its Secret ID) from the app registration's Certificates & secrets, in the variable or file auth names",
	// InvalidClientSecretExpiredKeysProvided.
	"AADSTS7000222": "the client secret has expired: create a new one under the app registration's Certificates & secrets and put its Value where auth names it",
	// UnauthorizedClient_DoesNotMatchRequest.
	"AADSTS700016": "the application (client_id) was not found in this tenant: check client_id and tenant_id, and that the app is registered (or consented) in this tenant",
	// InvalidTenantName.
	"AADSTS90002": "the tenant was not found: check tenant_id (a GUID or a verified domain) and that cloud names the national cloud the tenant lives in",
	// InvalidTenantIdentifier: not a tenant GUID or domain name.
	"AADSTS900023": "tenant_id is not a valid tenant GUID or domain name: check tenant_id",
	// The client assertion's signature does not verify.
	"AADSTS700027": "the client certificate does not match one uploaded to the app registration: upload the certificate of auth.certificate_file under Certificates & secrets, or point certificate_file at the right one",
	// AuthenticationFailed (an invalid client assertion, among others).
	"AADSTS50012": "the client assertion was refused: check that auth.certificate_file holds the certificate uploaded to the app registration, and that this machine's clock is right",
	// Client assertion outside its valid time range.
	"AADSTS700024": "the client assertion is outside its valid time range: set this machine's clock right (NTP)",
	// BlockedByConditionalAccess.
	"AADSTS53003": "a Conditional Access policy blocks this application's sign-in: ask an Entra admin to exclude the service principal or allow the location it signs in from",
	// UnauthorizedClientApplicationDisabled.
	"AADSTS7000112": "the application is disabled in this tenant: enable sign-in for its enterprise application (service principal)",
	// DelegationDoesNotExist: no consent.
	"AADSTS65001": "the application has no admin consent: grant admin consent for its API permissions in the app registration (see README, Granting access)",
	// InvalidResourceServicePrincipalNotFound.
	"AADSTS500011": "the resource (Exchange Online or Microsoft Graph) is not found in this tenant: check the endpoints and cloud, and that the tenant has the service",
	// No federated identity credential matches (workload identity).
	"AADSTS700213": "no federated identity credential matches the presented token: check the app registration's federated credentials (issuer, subject, audience)",
}

// netCause finds the network error in MSAL's message (which puts it last).
var netCause = regexp.MustCompile(`(dial tcp|lookup|tls:|x509:|proxyconnect) .*$`)

// aadsts finds an AADSTS code in an error description.
var aadsts = regexp.MustCompile(`AADSTS(\d+)`)

// ExplainSignIn returns err as a [*SignInError] when it is a credential's
// failure to get a token: the AADSTS code is taken from the token
// endpoint's error_codes, or else from "AADSTSnnn" in its description, and
// given the fix of [SignInFixes]. A login endpoint that cannot be reached
// gives a SignInError without a code that names the network error. Any
// other error, and nil, is returned as it is.
func ExplainSignIn(err error) error {
	if err == nil {
		return nil
	}
	var already *SignInError
	if errors.As(err, &already) {
		return err
	}
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		var op *net.OpError
		if errors.As(err, &op) {
			return &SignInError{Description: "the login endpoint cannot be reached: " + op.Error() + "; check endpoints.login, the network and any proxy", Err: err}
		}
		return err
	}
	se := &SignInError{Err: err}
	if afe.RawResponse != nil {
		body, _ := runtime.Payload(afe.RawResponse)
		var doc struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Codes       []int  `json:"error_codes"`
		}
		if json.Unmarshal(body, &doc) == nil {
			se.OAuthError = doc.Error
			se.Description = doc.Description
			for _, c := range doc.Codes {
				if c != 0 {
					se.Code = "AADSTS" + strconv.Itoa(c)
					break
				}
			}
		}
		if se.Description == "" {
			se.Description = fmt.Sprintf("the login endpoint answered %s", afe.RawResponse.Status)
		}
	} else {
		// No answer: the message is the transport's error (a refused
		// connection, a name that does not resolve, a TLS failure).
		msg := afe.Error()
		if _, after, ok := strings.Cut(msg, ": "); ok {
			msg = after
		}
		msg, _, _ = strings.Cut(msg, " To troubleshoot, visit")
		msg = strings.Join(strings.Fields(msg), " ")
		if m := netCause.FindString(msg); m != "" {
			msg = m
		}
		msg = strings.TrimSuffix(msg, ".")
		se.Description = "the login endpoint cannot be reached: " + msg + "; check endpoints.login, the network and any proxy"
		return se
	}
	if m := aadsts.FindStringSubmatch(se.Description); m != nil && se.Code == "" {
		se.Code = m[0]
	}
	se.Description = tidyDescription(se.Description, se.Code)
	if se.Code != "" {
		if fix, ok := SignInFixes[se.Code]; ok {
			se.Fix = fix
		} else {
			se.Fix = "see https://login.microsoftonline.com/error?code=" + strings.TrimPrefix(se.Code, "AADSTS")
		}
	}
	return se
}

// tidyDescription keeps the first line of an Entra error description,
// without its leading "AADSTSnnn: " (the code is reported on its own).
func tidyDescription(d, code string) string {
	d = firstLine(d)
	if code != "" {
		d = strings.TrimPrefix(d, code+": ")
	}
	return strings.TrimSuffix(strings.TrimSpace(d), ".")
}

func firstLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
