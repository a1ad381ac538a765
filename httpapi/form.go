package httpapi

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"unicode/utf8"
)

// maxFormBytes bounds every form body. OAuth requests are a few hundred
// bytes; 64 KiB leaves room for long scopes and redirect URIs.
const maxFormBytes = 64 << 10

// fieldLimit bounds, in bytes, each parameter tokend reads from a form or
// an /authorize query. Nothing legitimate comes near them: tokend's own
// opaque tokens, codes and secrets are under 60 bytes, JWT access tokens
// under maxTokenBytes (jwtaccess.go), user and tenant names at
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
	{"token", maxTokenBytes}, // JWT access tokens (jwtaccess.go)
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
	if len(names) == 0 && withinLimits(v) {
		return nil
	}
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

// withinLimits reports whether no parameter of v is over its limit: a
// lookup per parameter sent rather than per parameter known, for the
// common case; checkFieldLimits names the offender in its own order.
func withinLimits(v url.Values) bool {
	for name, vals := range v {
		if max, ok := fieldLimits[name]; ok {
			for _, val := range vals {
				if len(val) > max {
					return false
				}
			}
		}
	}
	return true
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

const formType = "application/x-www-form-urlencoded"

// bodyBufPool holds the buffers parseBody reads bodies into.
var bodyBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// parseBody fills r.PostForm (and r.Form) from the body, like
// r.ParseForm. For a POST without a query string it reads the body into a pooled
// buffer and parses it once, skipping ParseForm's copy of PostForm into
// Form and its query parse; with one it is r.ParseForm itself, so a
// malformed query is refused as before.
func parseBody(r *http.Request) error {
	if r.Method != http.MethodPost || r.URL.RawQuery != "" || r.Body == nil {
		return r.ParseForm()
	}
	buf := bodyBufPool.Get().(*bytes.Buffer)
	defer bodyBufPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return err
	}
	v, err := parseQuery(buf.String())
	if err != nil {
		return err
	}
	r.PostForm, r.Form = v, v
	return nil
}

// readForm is parseForm without the length limits, for the authorization
// endpoint, which reports them itself (to the client once it is known).
// queryOrForm returns a request's parameters: the query of a GET, the form
// body of a POST. /authorize and /end_session take both (OpenID Connect
// Core §3.1.2.1, RP-Initiated Logout §2).
func queryOrForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return r.URL.Query(), nil
	}
	f, err := readForm(w, r)
	return url.Values(f), err
}

func readForm(w http.ResponseWriter, r *http.Request) (form, error) {
	if ct := r.Header.Get("Content-Type"); ct != formType {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formType {
			return nil, errorf(http.StatusUnsupportedMediaType, "invalid_request",
				"Content-Type must be application/x-www-form-urlencoded")
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := parseBody(r); err != nil {
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
