package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
)

// Which redirect URIs a client may register. /authorize sends the browser
// to a registered URI with a code or token attached, so a URI that runs
// script, reads local files, or goes over plain HTTP across the network
// would hand those to whoever controls it. Allowed:
//
//   - https, to any host (RFC 6749 §3.1.2.1, RFC 9700 §2.1);
//   - http only to a loopback host, 127.0.0.1, [::1] or localhost: a
//     native app listening on its own machine (RFC 8252 §7.3);
//   - a private-use scheme, which must contain a dot (a reversed domain
//     name the app owns, com.example.app:/cb; RFC 8252 §7.1): a native
//     app's own URL handler.
//
// Every URI is absolute, without a fragment (RFC 6749 §3.1.2) and without
// user information. Scripting and local schemes (javascript:, data:,
// vbscript:, file:, ...) are refused by name, and so is any other scheme
// without a dot. /authorize matches the registered URI exactly
// (fsm.Client.HasRedirectURI), but for the port of a loopback IP literal
// (RFC 8252 §7.3), so what is checked here is what the browser is sent
// to.

// maxRedirectURI bounds one redirect URI; the browser is sent to it with
// a code, state and iss added.
const maxRedirectURI = 2000

// dangerousSchemes run content in the browser or reach local resources
// instead of handing a response to a client.
var dangerousSchemes = map[string]bool{
	"javascript": true, "data": true, "vbscript": true, "file": true,
	"about": true, "blob": true, "filesystem": true, "view-source": true,
}

// loopbackHosts are the hosts http: may name (RFC 8252 §7.3, §8.3).
var loopbackHosts = map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true}

func invalidRedirectURI(uri, why string) *oauthError {
	return errorf(http.StatusBadRequest, "invalid_redirect_uri", "redirect URI "+quoteURI(uri)+" "+why)
}

// quoteURI shows a refused URI in an error, shortened.
func quoteURI(uri string) string {
	if len(uri) > 100 {
		uri = uri[:100] + "..."
	}
	return `"` + strings.ToValidUTF8(uri, "?") + `"`
}

// checkRedirectURI returns nil if uri may be registered, else a 400
// invalid_redirect_uri error (RFC 7591 §3.2.2) that says why.
func checkRedirectURI(uri string) *oauthError {
	switch {
	case uri == "":
		return invalidRedirectURI(uri, "is empty")
	case len(uri) > maxRedirectURI:
		return invalidRedirectURI(uri, "is longer than 2000 bytes")
	case strings.IndexFunc(uri, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return invalidRedirectURI(uri, "contains whitespace or control characters")
	case strings.Contains(uri, "#"):
		return invalidRedirectURI(uri, "has a fragment (#): a redirect URI must not (RFC 6749 §3.1.2)")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return invalidRedirectURI(uri, "is not a valid URI")
	}
	if u.Scheme == "" {
		return invalidRedirectURI(uri, "is relative: it must be absolute, with a scheme (https://app.example/callback)")
	}
	if dangerousSchemes[u.Scheme] {
		return invalidRedirectURI(uri, "uses the "+u.Scheme+": scheme, which is never allowed: use https, http to a loopback host, or an app's private-use scheme")
	}
	if u.User != nil {
		return invalidRedirectURI(uri, "has user information (user@): not allowed")
	}
	switch {
	case u.Scheme == "https":
		if u.Host == "" || u.Hostname() == "" {
			return invalidRedirectURI(uri, "has no host")
		}
	case u.Scheme == "http":
		if u.Host == "" || u.Hostname() == "" {
			return invalidRedirectURI(uri, "has no host")
		}
		if !loopbackHosts[strings.ToLower(u.Hostname())] {
			return invalidRedirectURI(uri, "uses http to a host that is not loopback: use https, or http only to 127.0.0.1, [::1] or localhost (RFC 8252 §7.3)")
		}
	case strings.Contains(u.Scheme, "."):
		// A private-use scheme (RFC 8252 §7.1): com.example.app:/cb.
		if u.Opaque != "" || (u.Path == "" && u.Host == "") {
			return invalidRedirectURI(uri, "must have a path after the scheme, e.g. "+u.Scheme+":/callback (RFC 8252 §7.1)")
		}
	default:
		return invalidRedirectURI(uri, "uses the "+u.Scheme+": scheme: use https, http to a loopback host, or a private-use scheme with a dot, a reversed domain name the app owns (com.example.app:/callback, RFC 8252 §7.1)")
	}
	return nil
}
