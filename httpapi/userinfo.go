package httpapi

import (
	"net/http"
	"strings"

	"github.com/tokend/tokend/fsm"
)

// The UserInfo endpoint (OpenID Connect Core 1.0 §5.3), GET and POST,
// with the access token as a bearer token (RFC 6750 §2.1, or §2.2's
// access_token form field on POST). It releases claims by the token's
// scope: sub and tenant_id always, name and preferred_username with
// profile, email and email_verified with email. Errors are RFC 6750 §3
// challenges. An ID token is not an access token: it is not in the token
// index, so it is refused here like any unknown string.

type userinfoBody struct {
	Subject string `json:"sub"`
	Tenant  string `json:"tenant_id"`
	*userClaims
}

func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	// A token read like /introspect's: BeginRead, the lookup, FinishRead
	// (a revocation in flight is waited out, never answered past).
	fence, err := s.rep.BeginRead()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	raw, ok := bearerValue(r.Header.Get("Authorization"))
	if !ok && r.Method == http.MethodPost && r.Header.Get("Authorization") == "" &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f, err := parseForm(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		raw = f.get("access_token")
		ok = raw != ""
	}
	if !ok {
		bearerRefusal(w, http.StatusUnauthorized, challengeNoToken)
		return
	}
	h := fsm.HashOf(raw)
	t, ok := s.fsm.Lookup(h, s.now().UnixNano())
	if err := s.rep.FinishRead(r.Context(), fence, s.fsm.InFlight(h)); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok || t.Kind != fsm.KindAccess || t.Username == "" {
		bearerRefusal(w, http.StatusUnauthorized,
			challengeInvalidToken+`, error_description="the access token is unknown, expired or revoked, or not a user's"`)
		return
	}
	if !scopeHas(t.Scope, "openid") {
		bearerRefusal(w, http.StatusForbidden, challengeScope+`, scope="openid"`)
		return
	}
	if _, known := s.fsm.User(t.Tenant, t.Username); !known {
		bearerRefusal(w, http.StatusUnauthorized, challengeInvalidToken+`, error_description="the user no longer exists"`)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, userinfoBody{
		Subject: t.Tenant + "/" + t.Username, Tenant: t.Tenant,
		userClaims: s.userClaims(t.Tenant, t.Username, t.Scope),
	})
}

// bearerRefusal answers an RFC 6750 §3 error: the challenge and no body.
func bearerRefusal(w http.ResponseWriter, status int, challenge string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}
