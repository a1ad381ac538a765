package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tokend/tokend/fsm"
)

// OpenID Connect on the authorization endpoint (OpenID Connect Core 1.0
// §3.1.2, §3.2.2).
//
// An authorization request whose scope holds "openid" is an OpenID
// sign-in. On top of the OAuth checks it takes nonce, prompt, max_age and
// login_hint, and it may use the implicit flow's response types
// "id_token" and "id_token token" and the hybrid "code id_token" (its ID
// token carries c_hash; the code is redeemed as in the code flow). The OpenID scopes (openid, profile,
// email) need not be registered: any client registered for the code or
// implicit grant may ask for them. Without a Signer there is no OpenID
// Connect at all, and a request for openid is refused as invalid_scope
// with a description that says so.
//
// OpenID sign-ins share a sign-in session (sso.go): once a browser has
// signed in, later OpenID requests skip the login page, and a client the
// user already consented to for the requested scopes skips the consent
// page too, unless prompt asks for them. Plain OAuth requests (no openid)
// ask every time, as they always have.

// oidcScopes are the scopes any code or implicit client may ask for.
var oidcScopes = []string{"openid", "profile", "email"}

// oidcRequest holds the OpenID parameters of an authorization request.
type oidcRequest struct {
	openid    bool   // scope holds openid
	nonce     string // copied into the ID token
	maxAge    int64  // seconds; -1 when not given
	loginHint string // pre-fills the username
	// prompt values.
	none, login, consent bool
}

// scopeHas reports whether the space-separated scope holds want.
func scopeHas(scope, want string) bool {
	for sc := range strings.FieldsSeq(scope) {
		if sc == want {
			return true
		}
	}
	return false
}

// authScope resolves an authorization request's scope: grantScope's rules
// (empty means every registered scope), but the OpenID scopes are free for
// clients of the code or implicit grant when OpenID Connect is on.
func (s *Server) authScope(c *fsm.Client, requested string) (string, error) {
	fields := strings.Fields(requested)
	if !slices.ContainsFunc(fields, func(sc string) bool { return contains(oidcScopes, sc) }) {
		return grantScope(c, requested)
	}
	if s.cfg.Signer == nil && contains(fields, "openid") {
		return "", errorf(http.StatusBadRequest, "invalid_scope",
			"scope openid: OpenID Connect is not enabled on this server (it has no signing keys)")
	}
	free := s.cfg.Signer != nil && (c.HasGrant("authorization_code") || c.HasGrant("implicit"))
	var out []string
	for _, sc := range fields {
		if !(free && contains(oidcScopes, sc)) && !contains(c.Scopes, sc) {
			return "", errorf(http.StatusBadRequest, "invalid_scope", "scope "+sc+" is not registered for this client")
		}
		if !contains(out, sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " "), nil
}

// checkResponseType accepts the OpenID response types; ok is false for a
// type it does not know (the caller's switch goes on).
func (s *Server) checkResponseType(c *fsm.Client, req *authRequest) (e *authzError, ok bool) {
	switch req.responseType {
	case "id_token":
	case "id_token token", "token id_token":
		req.responseType = "id_token token"
	case "code id_token", "id_token code":
		req.responseType = "code id_token"
	default:
		return nil, false
	}
	if s.cfg.Signer == nil {
		req.responseType = ""
		return &authzError{"unsupported_response_type", "OpenID Connect is not enabled on this server (it has no signing keys)"}, true
	}
	for _, g := range req.grants() {
		if !c.HasGrant(g) {
			return &authzError{"unauthorized_client", "the client is not registered for the " + g + " grant"}, true
		}
	}
	return nil, true
}

// checkOIDCRequest validates the OpenID parameters once the scope is
// resolved and fills req.oidc.
func checkOIDCRequest(params url.Values, req *authRequest) *authzError {
	o := &req.oidc
	o.openid = scopeHas(req.scope, "openid")
	o.maxAge = -1
	switch {
	case params.Get("request") != "":
		return &authzError{"request_not_supported", "request objects are not supported"}
	case params.Get("request_uri") != "":
		return &authzError{"request_uri_not_supported", "request_uri is not supported"}
	case req.responseType != "code" && req.responseType != "token" && !o.openid:
		return &authzError{"invalid_scope", "response_type " + req.responseType + " needs the openid scope"}
	}
	o.nonce = params.Get("nonce") // at most 1024 bytes (form.go's limits)
	if strings.Contains(req.responseType, "id_token") && o.nonce == "" {
		return &authzError{"invalid_request", "nonce is required for response_type " + req.responseType}
	}
	if v := params.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return &authzError{"invalid_request", "max_age must be a non-negative number of seconds"}
		}
		o.maxAge = n
	}
	if h := strings.TrimSpace(params.Get("login_hint")); validName(h) {
		o.loginHint = h
	}
	return parsePrompt(params.Get("prompt"), o)
}

// parsePrompt reads prompt (Core §3.1.2.1): none alone, or any of login
// and consent; select_account means login here (one account per browser).
func parsePrompt(v string, o *oidcRequest) *authzError {
	for p := range strings.FieldsSeq(v) {
		switch p {
		case "none":
			o.none = true
		case "login", "select_account":
			o.login = true
		case "consent":
			o.consent = true
		default:
			return &authzError{"invalid_request", "prompt " + p + " is not supported (none, login, consent)"}
		}
	}
	if o.none && (o.login || o.consent) {
		return &authzError{"invalid_request", "prompt none cannot be combined with other values"}
	}
	return nil
}
