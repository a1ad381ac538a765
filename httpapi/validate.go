package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// validate serves GET /validate, the gateway hot path (nginx auth_request,
// Traefik ForwardAuth, Envoy ext_authz): one hash, one shard read lock, a
// few headers, from local memory. Errors follow RFC 6750 §3. The decision
// and the header values come from Validator.Validate, which the fast
// listener (package gateway) calls too, so the two cannot answer apart.
func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	a := s.decideValidate(r.Context(), r.Header.Get("Authorization"), r.URL.RawQuery)
	switch a.Status {
	case http.StatusServiceUnavailable:
		s.writeError(w, r, a.Err)
		return
	case http.StatusOK:
	default:
		w.Header()["Www-Authenticate"] = []string{a.Challenge}
		w.WriteHeader(a.Status)
		return
	}
	// One backing array for the value slices.
	h := w.Header()
	var scratch [validateScratch]byte
	vals := make([]string, len(validHeaderNames))
	for i, name := range validHeaderNames {
		vals[i] = a.headerString(scratch[:0], i)
		h[name] = vals[i : i+1 : i+1]
	}
	w.WriteHeader(http.StatusOK)
}

// headerString is the i-th header value of a 200 answer as a string that
// net/http may keep: the token's own strings where the value is one
// (immutable, so no copy), built only for a user's subject and the expiry.
func (a *ValidateAnswer) headerString(scratch []byte, i int) string {
	t := &a.tok
	switch {
	case i == 1, i == 0 && t.Username == "":
		return t.ClientID
	case i == 2:
		return t.Scope
	case i == 3:
		return t.Tenant
	case i == 5:
		return "no-store"
	}
	return string(a.AppendHeader(scratch, i))
}

// validateScratch is room for any header value of a 200 answer but a long
// scope, which simply grows the buffer.
const validateScratch = 256

// validHeaderNames are the headers of a 200 answer to /validate, in
// canonical form (docs/API.md). AppendHeader(i) is the value of the i-th.
var validHeaderNames = [...]string{
	"X-Token-Subject",
	"X-Token-Client-Id",
	"X-Token-Scope",
	"X-Token-Tenant",
	"X-Token-Expires-At",
	"Cache-Control",
}

// ValidHeaderNames returns the names of the headers of a 200 answer, in
// the order AppendHeader numbers them.
func ValidHeaderNames() []string { return validHeaderNames[:] }

// The WWW-Authenticate challenges of the refusals (RFC 6750 §3), exactly
// as docs/API.md writes them.
const (
	challengeNoToken      = `Bearer realm="tokend"`
	challengeInvalidToken = `Bearer error="invalid_token"`
	challengeScope        = `Bearer error="insufficient_scope"`
)

// Validator is the /validate decision, shared by the net/http route and
// the fast listener: bearer parsing, the readiness gate, the lookup, the
// scope check, the challenge and the header values all live here, and
// each server only copies a ValidateAnswer onto its own response type.
type Validator struct {
	s *Server
	// observe is the /validate route's metrics, the same series the
	// net/http route records into.
	observe func(status int, d time.Duration)
}

// Validator returns the server's /validate decision for another HTTP
// server to serve.
func (s *Server) Validator() *Validator {
	return &Validator{s: s, observe: s.metrics.route("/validate")}
}

// ValidateAnswer is the answer to one GET /validate. It holds no pointer
// into the request, so it outlives the buffers the request was read into.
type ValidateAnswer struct {
	// Status is 200, 401 (no or unknown token), 403 (insufficient
	// scope) or 503 (this node may not answer reads now).
	Status int
	// Challenge is the WWW-Authenticate value of a 401 or 403.
	Challenge string
	// Err is why this node is not ready, for a 503: written as the JSON
	// error every unready endpoint answers with (Validator.WriteError).
	Err error
	tok fsm.Token
}

// Validate decides one request from its Authorization header's first
// value and the URL's raw query. It does not keep either string, so a
// caller may pass strings that alias a buffer it reuses afterwards; a
// valid token without a scope query allocates nothing.
func (v *Validator) Validate(authorization, rawQuery string) ValidateAnswer {
	return v.s.decideValidate(context.Background(), authorization, rawQuery)
}

// ValidateContext is Validate for a request whose end ctx tells: a read
// of a token with a write in flight waits (Replicator.FinishRead) at most
// until then.
func (v *Validator) ValidateContext(ctx context.Context, authorization, rawQuery string) ValidateAnswer {
	return v.s.decideValidate(ctx, authorization, rawQuery)
}

func (s *Server) decideValidate(ctx context.Context, authorization, rawQuery string) ValidateAnswer {
	fence, err := s.rep.BeginRead()
	if err != nil {
		return ValidateAnswer{Status: http.StatusServiceUnavailable, Err: err}
	}
	raw, ok := bearerValue(authorization)
	if !ok {
		return ValidateAnswer{Status: http.StatusUnauthorized, Challenge: challengeNoToken}
	}
	h := fsm.HashOf(raw)
	t, ok := s.fsm.Lookup(h, s.now().UnixNano())
	// After the lookup, never before: a write applied in between is then
	// either in flight here or visible everywhere (fsm/recent.go).
	if err := s.rep.FinishRead(ctx, fence, s.fsm.InFlight(h)); err != nil {
		return ValidateAnswer{Status: http.StatusServiceUnavailable, Err: err}
	}
	if !ok || t.Kind != fsm.KindAccess {
		return ValidateAnswer{Status: http.StatusUnauthorized, Challenge: challengeInvalidToken}
	}
	if rawQuery != "" { // parsing an empty query still allocates a map
		if want := requestedScope(rawQuery); want != "" && !fsm.ScopeSubset(want, t.Scope) {
			challenge := challengeScope
			if validScopeSyntax(want) {
				challenge += `, scope="` + want + `"`
			}
			return ValidateAnswer{Status: http.StatusForbidden, Challenge: challenge}
		}
	}
	return ValidateAnswer{Status: http.StatusOK, tok: t}
}

// requestedScope is the scope query parameter, parsed as net/http's
// Request.URL.Query does (a copy: rawQuery may be a borrowed buffer).
func requestedScope(rawQuery string) string {
	q, _ := url.ParseQuery(strings.Clone(rawQuery))
	return q.Get("scope")
}

// AppendHeader appends the value of the i-th header of a 200 answer
// (ValidHeaderNames()[i]) to dst.
func (a *ValidateAnswer) AppendHeader(dst []byte, i int) []byte {
	t := &a.tok
	switch i {
	case 0: // fsm.Token.Subject, without building the string
		if t.Username == "" {
			return append(dst, t.ClientID...)
		}
		dst = append(dst, t.Tenant...)
		dst = append(dst, '/')
		return append(dst, t.Username...)
	case 1:
		return append(dst, t.ClientID...)
	case 2:
		return append(dst, t.Scope...)
	case 3:
		return append(dst, t.Tenant...)
	case 4:
		return strconv.AppendInt(dst, t.ExpiresAt/int64(time.Second), 10)
	case 5:
		return append(dst, "no-store"...)
	}
	return dst
}

// Observe records one answered /validate request into the route's
// metrics (tokend_http_requests_total and
// tokend_http_request_duration_seconds with route="/validate").
func (v *Validator) Observe(status int, d time.Duration) { v.observe(status, d) }

// WriteError writes a 503 answer's JSON error, Retry-After and
// Cache-Control to w exactly as the net/http route does.
func (v *Validator) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	v.s.writeError(w, r, err)
}

// FastPathFallback serves what a fast /validate listener (package
// gateway) carries besides GET /validate: /healthz and /readyz with the
// main router's handlers and metrics, a wrong method on /validate, and
// the same JSON 404 for every other path, so the OAuth and admin surfaces
// are never reachable through it.
func (s *Server) FastPathFallback() http.Handler {
	r := s.newRouter()
	r.Handle("/validate", s.instrument("/validate", s.validate)).Methods(http.MethodGet, http.MethodHead)
	s.handle(r, "/healthz", s.healthz, http.MethodGet, http.MethodHead)
	s.handle(r, "/readyz", s.readyz, http.MethodGet, http.MethodHead)
	return r
}

// bearer extracts an RFC 6750 §2.1 bearer token.
func bearer(r *http.Request) (string, bool) { return bearerValue(r.Header.Get("Authorization")) }

// bearerValue extracts the token from an Authorization header value.
func bearerValue(v string) (string, bool) {
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(v[7:])
	return tok, tok != ""
}

// validScopeSyntax reports whether s is made of RFC 6749 §3.3 scope-token
// characters and spaces, so it can be quoted in a header.
func validScopeSyntax(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
			return false
		}
	}
	return true
}
