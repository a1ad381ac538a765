package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// validate serves GET /validate, the gateway hot path (nginx auth_request,
// Traefik ForwardAuth, Envoy ext_authz): one hash, one shard read lock, a
// few headers, from local memory. Errors follow RFC 6750 §3.
func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	if s.unready(w, r) {
		return
	}
	raw, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tokend"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	t, ok := s.fsm.Lookup(fsm.HashOf(raw), s.now().UnixNano())
	if !ok || t.Kind != fsm.KindAccess {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`) // exactly as docs/API.md
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var want string
	if r.URL.RawQuery != "" { // parsing an empty query still allocates a map
		want = r.URL.Query().Get("scope")
	}
	if want != "" && !fsm.ScopeSubset(want, t.Scope) {
		challenge := `Bearer error="insufficient_scope"`
		if validScopeSyntax(want) {
			challenge += `, scope="` + want + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h["X-Token-Subject"] = []string{t.Subject()}
	h["X-Token-Client-Id"] = []string{t.ClientID}
	h["X-Token-Scope"] = []string{t.Scope}
	h["X-Token-Tenant"] = []string{t.Tenant}
	h["X-Token-Expires-At"] = []string{strconv.FormatInt(t.ExpiresAt/int64(time.Second), 10)}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(http.StatusOK)
}

// bearer extracts an RFC 6750 §2.1 bearer token.
func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
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
