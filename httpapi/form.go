package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// maxFormBytes bounds every form body. OAuth requests are a few hundred
// bytes; 64 KiB leaves room for long scopes and redirect URIs.
const maxFormBytes = 64 << 10

// fieldLimit bounds, in bytes, each parameter tokend reads from a form or
// an /authorize query. Nothing legitimate comes near them: tokend's own
// tokens, codes and secrets are under 60 bytes, user and tenant names at
// most 200 (admin.go), PKCE values at most 128 (RFC 7636). Over its limit
// a parameter is invalid_request (README, "Request limits"), before it
// reaches a lookup, the login limiter or a sign-in session.
var fieldLimit = []struct {
	name string
	max  int
}{
	{"grant_type", 64},
	{"response_type", 64},
	{"token_type_hint", 64},
	{"code_challenge_method", 64},
	{"consent", 64},
	{"client_id", 256},
	{"client_secret", 512},
	{"username", 256},
	{"password", 1024},
	{"tenant_id", 256},
	{"scope", 1024},
	{"state", maxStateLen},
	{"nonce", 1024},
	{"redirect_uri", 2048},
	{"code", 512},
	{"code_verifier", 128},
	{"code_challenge", 128},
	{"token", 512},
	{"refresh_token", 512},
	{"request_id", 256},
	{"csrf_token", 256},
}

// fieldLimits is fieldLimit by name.
var fieldLimits = func() map[string]int {
	m := make(map[string]int, len(fieldLimit))
	for _, f := range fieldLimit {
		m[f.name] = f.max
	}
	return m
}()

// checkFieldLimits returns invalid_request naming the first parameter of
// v (in fieldLimit's order) that is longer than its limit; with names,
// only those parameters are checked. The value itself is never echoed.
func checkFieldLimits(v url.Values, names ...string) *oauthError {
	for _, f := range fieldLimit {
		if len(names) > 0 && !contains(names, f.name) {
			continue
		}
		for _, val := range v[f.name] {
			if len(val) > f.max {
				return invalidRequest(f.name + " is longer than " + strconv.Itoa(f.max) + " bytes")
			}
		}
	}
	return nil
}

// form is a parsed application/x-www-form-urlencoded body in which every
// parameter appears at most once (RFC 6749 §3.1, §3.2).
type form url.Values

func (f form) get(k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (f form) has(k string) bool { _, ok := f[k]; return ok }

// parseForm reads a POST body, insisting on the form content type, a
// bounded size, valid UTF-8, no repeated parameters and no parameter over
// its length limit. Query parameters are ignored: credentials do not
// belong in URLs.
func parseForm(w http.ResponseWriter, r *http.Request) (form, error) {
	f, err := readForm(w, r)
	if err != nil {
		return nil, err
	}
	if err := checkFieldLimits(url.Values(f)); err != nil {
		return nil, err
	}
	return f, nil
}

// readForm is parseForm without the length limits, for the authorization
// endpoint, which reports them itself (to the client once it is known).
func readForm(w http.ResponseWriter, r *http.Request) (form, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errorf(http.StatusUnsupportedMediaType, "invalid_request",
			"Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		}
		return nil, invalidRequest("malformed form body")
	}
	for k, vs := range r.PostForm {
		if !utf8.ValidString(k) {
			return nil, invalidRequest("parameter names must be UTF-8")
		}
		if len(vs) > 1 {
			return nil, invalidRequest("parameter " + k + " repeated")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, invalidRequest("parameter " + k + " is not valid UTF-8")
			}
		}
	}
	return form(r.PostForm), nil
}
