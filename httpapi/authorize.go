package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// The authorization endpoint (RFC 6749 §3.1, §4.1, §4.2) with PKCE
// (RFC 7636) and the iss response parameter (RFC 9207).
//
//	GET|POST /authorize          validate the request, show the login page
//	POST     /authorize/login    check the password, show the consent page
//	POST     /authorize/consent  allow: issue a code or token and redirect
//	                             deny:  redirect with error=access_denied
//
// The client and redirect URI are checked before anything else; until
// they are, every problem is an error page and never a redirect, so
// tokend cannot be used as an open redirector. After that, errors go back
// to the client with error, error_description, state and iss (in the
// fragment for the implicit flow). See session.go for how the pages are
// tied to the browser.

const maxStateLen = 2048

// authzError is an error the client learns about through its redirect URI.
type authzError struct{ code, desc string }

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if s.unreadyPage(w, r) {
		return
	}
	params, err := queryOrForm(w, r)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Invalid request", describe(err))
		return
	}
	prefix := strings.TrimSuffix(r.URL.Path, "/authorize")

	// 1. Client and redirect URI: failures are pages, never redirects.
	if e := checkFieldLimits(params, "client_id", "redirect_uri"); e != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Invalid request", e.Description+".")
		return
	}
	clientID, ok := single(params, "client_id")
	if !ok || clientID == "" {
		s.errorPage(w, r, http.StatusBadRequest, "Unknown application",
			"The request does not name a registered application (client_id).")
		return
	}
	c, known := s.fsm.Client(clientID)
	if !known {
		s.errorPage(w, r, http.StatusBadRequest, "Unknown application",
			"The application that sent you here is not registered with this server.")
		return
	}
	redirect, ok := single(params, "redirect_uri")
	switch {
	case !ok:
		s.errorPage(w, r, http.StatusBadRequest, "Invalid request", "redirect_uri was given more than once.")
		return
	case redirect == "" && len(c.RedirectURIs) == 1:
		redirect = c.RedirectURIs[0]
	case redirect == "":
		s.errorPage(w, r, http.StatusBadRequest, "Invalid request",
			"The application must say where to return to (redirect_uri): it has several registered.")
		return
	case !c.HasRedirectURI(redirect):
		s.errorPage(w, r, http.StatusBadRequest, "Invalid redirect URI",
			"The address the application asked to return to is not registered for it, so this server will not send you there.")
		return
	}

	// 2. Everything else: errors go back to the client.
	req := authRequest{clientID: c.ID, redirectURI: redirect, prefix: prefix}
	req.responseType = params.Get("response_type")
	if st, ok := single(params, "state"); ok && len(st) <= maxStateLen {
		req.state = st
	} else {
		s.redirectError(w, r, req, "invalid_request", "state is repeated or longer than "+strconv.Itoa(maxStateLen)+" bytes")
		return
	}
	if e := checkFieldLimits(params); e != nil {
		s.redirectError(w, r, req, e.Code, e.Description)
		return
	}
	if e := s.checkAuthRequest(params, c, &req); e != nil {
		s.redirectError(w, r, req, e.code, e.desc)
		return
	}

	if s.resumeSignIn(w, r, c, req) { // sso.go
		return
	}
	browser := s.browserID(w, r)
	sess := s.sessions.create(s.now(), browser, req)
	s.render(w, r, s.pages.login, http.StatusOK, loginData{
		Action: prefix + "/authorize/login", RequestID: sess.id, CSRF: sess.csrf,
		ClientName: c.Name, Tenant: req.tenant, TenantFixed: req.tenant != "",
		Username: req.oidc.loginHint,
	}, loginFormAction(req))
}

// unreadyPage is unready for the HTML pages: an error page with 503 and
// Retry-After when this node cannot serve from local state right now.
func (s *Server) unreadyPage(w http.ResponseWriter, r *http.Request) bool {
	err := s.rep.ReadReady()
	if err == nil {
		return false
	}
	var ra retryAfter
	if errors.As(err, &ra) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ra.RetryAfter())))
	}
	s.errorPage(w, r, http.StatusServiceUnavailable, "Try again in a moment",
		"This server is catching up with the cluster and cannot sign you in right now.")
	return true
}

// checkAuthRequest validates what follows the client and redirect URI and
// fills req.
func (s *Server) checkAuthRequest(params url.Values, c *fsm.Client, req *authRequest) *authzError {
	for k, v := range params {
		if len(v) > 1 {
			return &authzError{"invalid_request", "parameter " + k + " is repeated"}
		}
	}
	switch req.responseType {
	case "":
		return &authzError{"invalid_request", "response_type is required"}
	case "code":
		if !c.HasGrant("authorization_code") {
			return &authzError{"unauthorized_client", "the client is not registered for the authorization_code grant"}
		}
	case "token":
		if !c.HasGrant("implicit") {
			return &authzError{"unauthorized_client", "the client is not registered for the implicit grant"}
		}
	default:
		if e, ok := s.checkResponseType(c, req); ok { // OpenID's id_token types
			if e != nil {
				return e
			}
			break
		}
		req.responseType = "" // unknown: answer in the query
		return &authzError{"unsupported_response_type", "response_type must be code or token"}
	}

	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
	if req.usesCode() {
		switch {
		case challenge == "" && method != "":
			return &authzError{"invalid_request", "code_challenge_method without code_challenge"}
		case challenge == "" && c.Public:
			return &authzError{"invalid_request", "public clients must use PKCE: code_challenge with code_challenge_method=S256"}
		case challenge != "" && method != "S256":
			return &authzError{"invalid_request", "code_challenge_method must be S256 (plain is not supported)"}
		case challenge != "" && (len(challenge) != 43 || !validVerifier(challenge+"12345678")):
			// An S256 challenge is 43 base64url characters; the
			// padding makes validVerifier check just the alphabet.
			return &authzError{"invalid_request", "code_challenge is not a base64url SHA-256 value"}
		}
		req.challenge = challenge
	}

	scope, err := s.authScope(c, params.Get("scope"))
	if err != nil {
		return &authzError{"invalid_scope", describe(err)}
	}
	req.scope = scope

	if t := params.Get("tenant_id"); t != "" {
		if !validName(t) {
			return &authzError{"invalid_request", "tenant_id is not a valid tenant name"}
		}
		req.tenant = t
	}
	return checkOIDCRequest(params, req) // oidcauthz.go
}

// authorizeLogin checks the password posted by the login page.
func (s *Server) authorizeLogin(w http.ResponseWriter, r *http.Request) {
	if s.handOff(w, r) || s.unreadyPage(w, r) {
		return
	}
	f, sess, c, ok := s.sessionPost(w, r)
	if !ok {
		return
	}
	data := loginData{
		Action: sess.req.prefix + "/authorize/login", RequestID: sess.id, CSRF: sess.csrf,
		ClientName: c.Name, Tenant: sess.req.tenant, TenantFixed: sess.req.tenant != "",
		Username: strings.TrimSpace(f.get("username")),
	}
	tenant := sess.req.tenant
	if tenant == "" {
		data.Tenant = strings.TrimSpace(f.get("tenant_id"))
		tenant = data.Tenant
		if tenant == "" {
			tenant = defaultTenant
		}
	}
	password := f.get("password")
	switch {
	case data.Username == "" || password == "":
		data.Error = "Enter your username and password."
		s.render(w, r, s.pages.login, http.StatusBadRequest, data, loginFormAction(sess.req))
		return
	case !validName(tenant) || !validName(data.Username) || len(password) > 1024:
		data.Error = "Incorrect username or password."
		s.render(w, r, s.pages.login, http.StatusUnauthorized, data, loginFormAction(sess.req))
		return
	}
	if err := s.checkUser(r, tenant, data.Username, password); err != nil {
		var oe *oauthError
		if errors.As(err, &oe) && oe.Status == http.StatusTooManyRequests {
			secs := retryAfterSeconds(oe.retry)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			data.Error = "Too many failed sign-in attempts. Wait " + strconv.Itoa(secs) + " s and try again."
			s.render(w, r, s.pages.login, http.StatusTooManyRequests, data, loginFormAction(sess.req))
			return
		}
		data.Error = "Incorrect username or password."
		s.render(w, r, s.pages.login, http.StatusUnauthorized, data, loginFormAction(sess.req))
		return
	}
	s.afterLogin(w, r, c, sess, signedIn{tenant: tenant, username: data.Username, authTime: s.now().Unix()})
}

// afterLogin goes on from a correct password: an OpenID request starts a
// sign-in session (sso.go) and skips the consent page when the user
// approved the requested scopes for this client before.
func (s *Server) afterLogin(w http.ResponseWriter, r *http.Request, c *fsm.Client, sess authSession, u signedIn) {
	if sess.req.oidc.openid {
		if err := s.startSSO(r.Context(), w, u); err != nil {
			// Only single sign-on is lost: this sign-in goes on.
			s.log.WarnContext(r.Context(), "authorize: no sign-in session", "err", err)
		}
		if !s.needConsent(c, sess.req, u) {
			if !s.sessions.take(sess.id) {
				s.expiredPage(w, r)
				return
			}
			s.issueAuthorization(w, r, c, sess.req, u)
			return
		}
	}
	csrf, ok := s.sessions.signIn(sess.id, u.username, u.tenant, u.authTime)
	if !ok {
		s.expiredPage(w, r)
		return
	}
	s.consentPage(w, r, c, sess, csrf, u, false)
}

// consentPage shows the consent page of a signed-in session; fromSSO
// when the password was not asked for it.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, c *fsm.Client, sess authSession, csrf string, u signedIn, fromSSO bool) {
	s.render(w, r, s.pages.consent, http.StatusOK, consentData{
		Action: sess.req.prefix + "/authorize/consent", RequestID: sess.id, CSRF: csrf,
		ClientName: c.Name, Username: u.username, Tenant: u.tenant, ShowTenant: u.tenant != defaultTenant,
		Scopes: strings.Fields(sess.req.scope), RedirectHost: redirectHost(sess.req.redirectURI), SignOut: fromSSO,
	}, consentFormAction(sess.req.redirectURI))
}

// authorizeConsent finishes the request: deny, or issue and redirect.
func (s *Server) authorizeConsent(w http.ResponseWriter, r *http.Request) {
	if s.handOff(w, r) || s.unreadyPage(w, r) {
		return
	}
	f, sess, c, ok := s.sessionPost(w, r)
	if !ok {
		return
	}
	if sess.username == "" {
		s.errorPage(w, r, http.StatusBadRequest, "Not signed in",
			"Sign in before approving access. Return to the application and start again.")
		return
	}
	if !s.sessions.take(sess.id) {
		s.expiredPage(w, r)
		return
	}
	req := sess.req
	switch f.get("consent") {
	case "allow":
	case "deny":
		s.redirectError(w, r, req, "access_denied", "the user denied the request")
		return
	default:
		s.redirectError(w, r, req, "invalid_request", "consent must be allow or deny")
		return
	}
	u := signedIn{tenant: sess.tenant, username: sess.username, authTime: sess.authTime}
	if req.oidc.openid {
		s.rememberConsent(r.Context(), u, c.ID, req.scope) // sso.go
	}
	s.issueAuthorization(w, r, c, req, u)
}

// issueAuthorization issues what req asks for to the signed-in user and
// redirects back to the client: a code, an access token, an ID token, or
// an access token with an ID token.
func (s *Server) issueAuthorization(w http.ResponseWriter, r *http.Request, c *fsm.Client, req authRequest, u signedIn) {
	// The registration may have changed while the user was deciding.
	for _, grant := range req.grants() {
		if !c.HasGrant(grant) {
			s.redirectError(w, r, req, "unauthorized_client", "the client is no longer registered for the "+grant+" grant")
			return
		}
	}
	scope, err := s.authScope(c, req.scope)
	if err != nil {
		s.redirectError(w, r, req, "invalid_scope", describe(err))
		return
	}
	cmd := &fsm.IssueGrant{ClientID: c.ID, Tenant: u.tenant, Username: u.username, Scope: scope}
	if req.oidc.openid {
		cmd.Nonce, cmd.AuthTime = req.oidc.nonce, u.authTime
	}
	params, err := s.authorizationParams(r.Context(), c, req, u, cmd)
	if err == nil && req.responseType != "id_token" { // an ID token alone is no grant
		var res fsm.Result
		if res, err = s.apply(r.Context(), cmd); err == nil && res.Outcome != fsm.OK {
			err = fmt.Errorf("issue grant: %w", res.Err())
		}
	}
	if err != nil {
		var ra retryAfter
		if errors.As(err, &ra) {
			s.redirectError(w, r, req, "temporarily_unavailable", "the server cannot issue tokens right now; try again")
			return
		}
		s.log.ErrorContext(r.Context(), "authorize: issue grant", "client_id", c.ID, "err", err)
		s.redirectError(w, r, req, "server_error", "the grant could not be issued")
		return
	}
	s.redirectTo(w, r, req, params)
}

// authorizationParams mints what the response carries and completes cmd
// with its hashes. Everything is signed before the grant is written.
func (s *Server) authorizationParams(ctx context.Context, c *fsm.Client, req authRequest, u signedIn, cmd *fsm.IssueGrant) (url.Values, error) {
	params := url.Values{}
	var access, code string
	if req.usesCode() {
		now := s.now()
		code = newSecret(prefixCode)
		cmd.IssuedAt = now.UnixNano()
		cmd.Code = fsm.TokenSpec{Hash: fsm.HashOf(code), ExpiresAt: now.Add(s.cfg.CodeTTL).UnixNano()}
		cmd.RedirectURI, cmd.CodeChallenge = req.redirectURI, req.challenge
		params.Set("code", code)
	} else if req.responseType != "id_token" {
		t, err := s.mintFor(ctx, c, holder{tenant: u.tenant, username: u.username, scope: cmd.Scope, authTime: cmd.AuthTime}, false)
		if err != nil {
			return nil, err
		}
		cmd.IssuedAt, cmd.Access, access = t.now.UnixNano(), t.accessSpec, t.access
		params.Set("access_token", t.access)
		params.Set("token_type", "bearer")
		params.Set("expires_in", strconv.FormatInt(int64(s.cfg.AccessTTL/time.Second), 10))
		params.Set("scope", cmd.Scope)
	}
	if strings.Contains(req.responseType, "id_token") {
		sub := idSubject{clientID: c.ID, tenant: u.tenant, username: u.username, scope: cmd.Scope,
			nonce: req.oidc.nonce, authTime: u.authTime}
		// Profile claims only when no access token will follow (Core §5.4).
		idt, err := s.signIDToken(ctx, sub, access, code, access == "" && code == "") // idtoken.go
		if err != nil {
			return nil, err
		}
		params.Set("id_token", idt)
	}
	return params, nil
}

// sessionPost parses a login or consent post and checks its session,
// CSRF token and cookie binding and that the client and redirect URI are
// still registered. On failure it has written an error page.
func (s *Server) sessionPost(w http.ResponseWriter, r *http.Request) (form, authSession, *fsm.Client, bool) {
	f, err := parseForm(w, r)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Invalid request", describe(err))
		return nil, authSession{}, nil, false
	}
	sess, ok := s.sessions.get(s.now(), f.get("request_id"))
	if !ok {
		s.expiredPage(w, r)
		return nil, authSession{}, nil, false
	}
	if !checkBinding(r, sess, f.get("csrf_token")) {
		s.errorPage(w, r, http.StatusForbidden, "Request refused",
			"This form could not be verified: its security token is missing or wrong, or your browser did not send its cookie. "+
				"Return to the application and start again.")
		return nil, authSession{}, nil, false
	}
	c, ok := s.fsm.Client(sess.req.clientID)
	if !ok || !c.HasRedirectURI(sess.req.redirectURI) {
		s.errorPage(w, r, http.StatusBadRequest, "Unknown application",
			"The application that sent you here is no longer registered with this server.")
		return nil, authSession{}, nil, false
	}
	return f, sess, c, true
}

func (s *Server) expiredPage(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusBadRequest, "Sign-in expired",
		"This sign-in request has expired or was already used. Return to the application and start again.")
}

// redirectError sends an RFC 6749 §4.1.2.1 / §4.2.2.1 error to the client.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req authRequest, code, desc string) {
	params := url.Values{"error": {code}}
	if desc != "" {
		params.Set("error_description", desc)
	}
	s.redirectTo(w, r, req, params)
}

// redirectTo sends the browser to the client's redirect URI with params
// (plus state and iss) in the query, or in the fragment for the implicit
// flow. The registered URI's own query is kept.
func (s *Server) redirectTo(w http.ResponseWriter, r *http.Request, req authRequest, params url.Values) {
	if req.state != "" {
		params.Set("state", req.state)
	}
	if s.cfg.Issuer != "" {
		params.Set("iss", s.cfg.Issuer)
	}
	target := req.redirectURI
	if req.fragment() {
		if i := strings.IndexByte(target, '#'); i >= 0 {
			target = target[:i]
		}
		target += "#" + params.Encode()
	} else if strings.Contains(target, "?") {
		target += "&" + params.Encode()
	} else {
		target += "?" + params.Encode()
	}
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Location", target)
	w.WriteHeader(status)
}

// single returns the only value of k; ok is false when k is repeated.
func single(v url.Values, k string) (string, bool) {
	switch vs := v[k]; len(vs) {
	case 0:
		return "", true
	case 1:
		return vs[0], true
	}
	return "", false
}

func describe(err error) string {
	var oe *oauthError
	if errors.As(err, &oe) {
		return oe.Description
	}
	return "the request is malformed"
}

// redirectHost is what the consent page says the user returns to.
func redirectHost(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	if u.Host != "" {
		return u.Host
	}
	return u.Scheme + ":"
}
