package httpapi

import (
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// issued holds raw tokens minted for one response and their hashes for the
// command. Raw values never leave this struct except into the response.
type issued struct {
	access, refresh string
	accessSpec      fsm.TokenSpec
	refreshSpec     fsm.TokenSpec
	now             time.Time
	// idToken is the OpenID Connect ID token issued with them
	// (idtoken.go), "" when none.
	idToken string
}

func (s *Server) mint(withRefresh bool) issued {
	now := s.now()
	t := issued{now: now, access: newSecret(prefixAccess)}
	t.accessSpec = fsm.TokenSpec{Hash: fsm.HashOf(t.access), ExpiresAt: now.Add(s.cfg.AccessTTL).UnixNano()}
	if withRefresh {
		t.refresh = newSecret(prefixRefresh)
		t.refreshSpec = fsm.TokenSpec{Hash: fsm.HashOf(t.refresh), ExpiresAt: now.Add(s.cfg.RefreshTTL).UnixNano()}
	}
	return t
}

func (s *Server) writeTokens(w http.ResponseWriter, t issued, scope string, res fsm.Result) {
	h := w.Header()
	h["Cache-Control"] = headerNoStore
	h["Pragma"] = headerNoCache
	buf := bodyPool.Get().(*[]byte)
	*buf = appendTokenResponse(*buf, t.access, t.refresh, t.idToken, scope, int64(s.cfg.AccessTTL/time.Second), res.IssuedCount, t.now)
	writeBody(w, http.StatusOK, buf)
}

// appendTokenResponse appends the token endpoint's success body: RFC 6749
// §5.1, id_token when one was issued (OpenID Connect Core §3.1.3.3), plus
// the Martini guide's token_issued_counter and
// last_token_issued_date (issued, in UTC, as RFC 3339). The bytes are what
// encoding/json writes for the tokenResponse struct in jsonbody_test.go,
// which holds the appender to it.
func appendTokenResponse(b []byte, access, refresh, idToken, scope string, expiresIn int64, count uint64, issued time.Time) []byte {
	o := jsonObject{b: append(b, '{')}
	o.str("access_token", access)
	o.str("token_type", "bearer")
	o.int("expires_in", expiresIn)
	o.strOmit("refresh_token", refresh)
	o.strOmit("id_token", idToken)
	o.strOmit("scope", scope)
	o.uint("token_issued_counter", count)
	o.key("last_token_issued_date")
	o.b = append(o.b, '"')
	o.b = issued.UTC().AppendFormat(o.b, time.RFC3339)
	return append(o.b, '"', '}', '\n')
}

// token serves POST /token (RFC 6749 §3.2).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if s.unready(w, r) {
		return
	}
	if err := s.tokenRequest(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) tokenRequest(w http.ResponseWriter, r *http.Request) error {
	f, err := parseForm(w, r)
	if err != nil {
		return err
	}
	c, err := s.authenticateClient(r, f)
	if err != nil {
		return err
	}
	grantType := f.get("grant_type")
	switch grantType {
	case "":
		return invalidRequest("grant_type is required")
	case "password", "client_credentials", "refresh_token", "authorization_code":
	default:
		return errorf(http.StatusBadRequest, "unsupported_grant_type", "grant_type "+grantType+" is not supported")
	}
	if !c.HasGrant(grantType) {
		return errorf(http.StatusBadRequest, "unauthorized_client", "client is not registered for "+grantType)
	}
	switch grantType {
	case "password":
		return s.passwordGrant(w, r, f, c)
	case "client_credentials":
		return s.clientCredentialsGrant(w, r, f, c)
	case "refresh_token":
		return s.refreshGrant(w, r, f, c)
	default:
		return s.codeGrant(w, r, f, c)
	}
}

// grantScope resolves the requested scope against the client's registered
// scopes: empty means all of them; anything unregistered is invalid_scope.
func grantScope(c *fsm.Client, requested string) (string, error) {
	if strings.TrimSpace(requested) == "" {
		return strings.Join(c.Scopes, " "), nil
	}
	if contains(c.Scopes, requested) {
		// One registered scope, as sent (the common request): nothing
		// to split or join.
		return requested, nil
	}
	var out []string
	for _, sc := range strings.Fields(requested) {
		if !contains(c.Scopes, sc) {
			return "", errorf(http.StatusBadRequest, "invalid_scope", "scope "+sc+" is not registered for this client")
		}
		if !contains(out, sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " "), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (s *Server) passwordGrant(w http.ResponseWriter, r *http.Request, f form, c *fsm.Client) error {
	username, password := f.get("username"), f.get("password")
	if username == "" || !f.has("password") {
		return invalidRequest("username and password are required")
	}
	tenant := f.get("tenant_id")
	if tenant == "" {
		tenant = defaultTenant
	}
	scope, err := grantScope(c, f.get("scope"))
	if err != nil {
		return err
	}
	if err := s.checkUser(r, tenant, username, password); err != nil {
		return err
	}
	t, err := s.mintFor(r.Context(), c, holder{tenant: tenant, username: username, scope: scope}, c.HasGrant("refresh_token"))
	if err != nil {
		return err
	}
	res, err := s.apply(r.Context(), &fsm.IssueGrant{
		ClientID: c.ID, Tenant: tenant, Username: username, Scope: scope,
		IssuedAt: t.now.UnixNano(), Access: t.accessSpec, Refresh: t.refreshSpec,
	})
	if err == nil {
		err = outcomeError(res, newGrant)
	}
	if err != nil {
		return err
	}
	s.writeTokens(w, t, scope, res)
	return nil
}

// checkUser verifies a resource owner's password behind the brute-force
// limiter (limiter.go), which is keyed by user and by client address. The
// login page and the password grant both sign in through here, so they
// share one policy and one count.
func (s *Server) checkUser(r *http.Request, tenant, username, password string) error {
	addr := s.originAddr(r)
	uk, ak := userKey(tenant, username), addrKey(addr)
	if wait, kind := s.limiter.blocked(uk, ak); wait > 0 {
		s.limiter.throttled.WithLabelValues(string(kind)).Inc()
		desc := "too many failed sign-ins for this user; retry later"
		if kind == limitAddr {
			desc = "too many failed sign-ins from this address; retry later"
		}
		return &oauthError{Status: http.StatusTooManyRequests, Code: "temporarily_unavailable",
			Description: desc, retry: wait}
	}
	hash := s.dummyHash
	u, known := s.fsm.User(tenant, username)
	if known {
		hash = u.PasswordHash
	}
	ok, err := checkPassword(hash, password)
	if err != nil || !ok || !known {
		for _, lo := range s.limiter.fail(uk, ak) {
			s.logLockout(r, lo, tenant, uk, addr)
		}
		return errorf(http.StatusBadRequest, "invalid_grant", "invalid username or password")
	}
	s.limiter.succeed(uk)
	return nil
}

// logLockout counts and logs a lock-out so that operators see an attack:
// the address, and for a user the tenant and the first 8 bytes of the
// user's limiter key (hex of SHA-256(tenant NUL username)), never the
// username or anything typed as a password.
func (s *Server) logLockout(r *http.Request, lo lockout, tenant string, user limitKey, addr string) {
	s.limiter.lockouts.WithLabelValues(string(lo.kind)).Inc()
	switch lo.kind {
	case limitUser:
		s.log.WarnContext(r.Context(), "sign-in lock-out: too many failed passwords for one user",
			"kind", string(lo.kind), "tenant", tenant, "user_key", hex.EncodeToString(user[:8]),
			"failures", lo.failures, "locked_for", lo.wait.String(), "remote_addr", addr)
	default:
		s.log.WarnContext(r.Context(), "sign-in lock-out: too many failed passwords from one address",
			"kind", string(lo.kind), "remote_addr", addr, "budget", lo.failures,
			"window", s.limiter.addrWindow.String(), "locked_for", lo.wait.String())
	}
}

func (s *Server) clientCredentialsGrant(w http.ResponseWriter, r *http.Request, f form, c *fsm.Client) error {
	if err := requireConfidential(c); err != nil {
		return err
	}
	scope, err := grantScope(c, f.get("scope"))
	if err != nil {
		return err
	}
	t, err := s.mintFor(r.Context(), c, holder{scope: scope}, false)
	if err != nil {
		return err
	}
	res, err := s.apply(r.Context(), &fsm.IssueGrant{
		ClientID: c.ID, Scope: scope, IssuedAt: t.now.UnixNano(), Access: t.accessSpec,
	})
	if err == nil {
		err = outcomeError(res, newGrant)
	}
	if err != nil {
		return err
	}
	s.writeTokens(w, t, scope, res)
	return nil
}

func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, f form, c *fsm.Client) error {
	old := f.get("refresh_token")
	if old == "" {
		return invalidRequest("refresh_token is required")
	}
	requested := strings.Join(strings.Fields(f.get("scope")), " ")
	t, err := s.mintRotation(r.Context(), c, old, requested)
	if err != nil {
		return err
	}
	res, err := s.apply(r.Context(), &fsm.RotateRefresh{
		Old: fsm.HashOf(old), ClientID: c.ID, Scope: requested,
		Now: t.now.UnixNano(), Grace: int64(s.cfg.RefreshGrace),
		Access: t.accessSpec, Refresh: t.refreshSpec,
	})
	if err == nil {
		err = outcomeError(res, aRefresh)
	}
	if err == nil {
		err = s.idTokenAfter(r.Context(), &t, res.Scope, false)
	}
	if err != nil {
		return err
	}
	s.writeTokens(w, t, res.Scope, res)
	return nil
}

func (s *Server) codeGrant(w http.ResponseWriter, r *http.Request, f form, c *fsm.Client) error {
	code := f.get("code")
	if code == "" {
		return invalidRequest("code is required")
	}
	redirect := f.get("redirect_uri")
	if redirect == "" && len(c.RedirectURIs) == 1 {
		redirect = c.RedirectURIs[0]
	}
	var challenge string
	if v := f.get("code_verifier"); v != "" {
		if !validVerifier(v) {
			return invalidRequest("code_verifier must be 43-128 characters of [A-Za-z0-9-._~]")
		}
		challenge = s256(v)
	}
	t, err := s.mintRedemption(r.Context(), c, code)
	if err == nil {
		err = s.idTokenForCode(r.Context(), c, code, &t)
	}
	if err != nil {
		return err
	}
	res, err := s.apply(r.Context(), &fsm.RedeemCode{
		Code: fsm.HashOf(code), ClientID: c.ID, RedirectURI: redirect, Challenge: challenge,
		Now: t.now.UnixNano(), Access: t.accessSpec, Refresh: t.refreshSpec,
	})
	if err == nil {
		err = outcomeError(res, aCode)
	}
	if err == nil {
		err = s.idTokenAfter(r.Context(), &t, res.Scope, true)
	}
	if err != nil {
		return err
	}
	s.writeTokens(w, t, res.Scope, res)
	return nil
}

// validVerifier checks RFC 7636 §4.1's code_verifier syntax.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; {
		case ch >= 'A' && ch <= 'Z', ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~':
		default:
			return false
		}
	}
	return true
}

// defaultTenant is where users land when no tenant is named (docs/API.md,
// POST /admin/users).
const defaultTenant = "default"
