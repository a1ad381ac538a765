package httpapi_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokend/tokend/httpapi"
	"github.com/tokend/tokend/keys"
)

// OpenID Connect at the HTTP level: ID tokens from the code flow, the
// implicit id_token types and refresh, /userinfo, single sign-on with
// prompt, max_age and login_hint, consent memory, RP-initiated logout,
// the admin API's claims, and what a server without a Signer says. The
// Signer is a real keys.Manager over the test's FSM. Helpers carry an oi
// prefix.

var _ httpapi.Signer = (*keys.Manager)(nil)

// withKeys gives the server a keys.Manager (ES256 only: RSA key
// generation is slow under -race) over its own FSM and replicator; km,
// when set, receives it.
func withKeys(t testing.TB, now func() time.Time, km **keys.Manager) func(*httpapi.Config) {
	return func(cfg *httpapi.Config) {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			t.Fatal(err)
		}
		sealer, err := keys.NewSealer(secret)
		if err != nil {
			t.Fatal(err)
		}
		m, err := keys.New(keys.Config{FSM: cfg.FSM, Apply: cfg.Replicator.Apply, Sealer: sealer, Now: now,
			Alg: keys.ES256, Algs: []string{keys.ES256}, RetireAfter: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Signer = m
		if km != nil {
			*km = m
		}
	}
}

// oiClaims decodes an ID token after checking its signature.
func oiClaims(t *testing.T, km *keys.Manager, idToken string) map[string]any {
	t.Helper()
	payload, err := km.Verify(idToken, "JWT")
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func oiHalfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// oiUser creates a user with claims through the admin API.
func (e *azEnv) oiUser(tenant, username, password string, claims map[string]any) {
	e.t.Helper()
	body := map[string]any{"tenant": tenant, "username": username, "password": password}
	for k, v := range claims {
		body[k] = v
	}
	resp := e.admin(http.MethodPost, "/admin/users", body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create user: %d", resp.StatusCode)
	}
}

// oiUserinfo calls /userinfo with a bearer token and returns the status,
// the challenge and the decoded body.
func (e *azEnv) oiUserinfo(method, token string) (int, string, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &v)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), v
}

func oiAuthQuery(c azClient, responseType, scope, state, nonce string, extra ...string) url.Values {
	q := url.Values{"response_type": {responseType}, "client_id": {c.ID}, "redirect_uri": {c.Redirect},
		"scope": {scope}, "state": {state}, "tenant_id": {"eneco"}}
	if nonce != "" {
		q.Set("nonce", nonce)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

func TestOIDCCodeFlowIDTokenUserinfoRefresh(t *testing.T) {
	var km *keys.Manager
	e := newAZEnv(t, nil, withKeys(t, nil, &km))
	app := e.client("RP", []string{"https://rp.example/cb"}, nil, []string{"read"}, false)
	e.oiUser("eneco", "alice", "pw", map[string]any{"name": "Alice Liddell", "email": "alice@example.com", "email_verified": true})
	b := e.browser()

	// The OpenID scopes are not registered for the client, and need not be.
	page := e.authorize(b, oiAuthQuery(app, "code", "openid profile email read", "s1", "n-0S6_WzA2Mj"))
	page.wantPage(t, http.StatusOK, "Sign in")
	before := time.Now().Unix()
	page = e.login(b, page, "alice", "pw")
	page.wantPage(t, http.StatusOK, "wants to access your account")
	v := e.consent(b, page, "allow").redirected(t, app.Redirect, false)
	tok, err := e.oauth2Config(app).Exchange(e.ctx(), v.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	idt, _ := tok.Extra("id_token").(string)
	if idt == "" || tok.Extra("scope") != "openid profile email read" {
		t.Fatalf("token response: id_token %q scope %v", idt, tok.Extra("scope"))
	}
	c := oiClaims(t, km, idt)
	authTime, _ := c["auth_time"].(float64)
	for k, want := range map[string]any{"iss": azIssuer, "sub": "eneco/alice", "aud": app.ID, "azp": app.ID,
		"nonce": "n-0S6_WzA2Mj", "tenant_id": "eneco", "at_hash": oiHalfHash(tok.AccessToken)} {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c[k], want)
		}
	}
	if int64(authTime) < before || int64(authTime) > time.Now().Unix() {
		t.Errorf("auth_time %v not the sign-in time", c["auth_time"])
	}
	if exp, _ := c["exp"].(float64); exp-c["iat"].(float64) != 1800 {
		t.Errorf("exp - iat = %v, want the access TTL", exp-c["iat"].(float64))
	}
	// An access token was issued: the profile claims come from /userinfo.
	if _, ok := c["email"]; ok {
		t.Errorf("ID token of the code flow carries email: %v", c)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		status, _, info := e.oiUserinfo(method, tok.AccessToken)
		if status != http.StatusOK || info["sub"] != "eneco/alice" || info["name"] != "Alice Liddell" ||
			info["preferred_username"] != "alice" || info["email"] != "alice@example.com" ||
			info["email_verified"] != true || info["tenant_id"] != "eneco" {
			t.Fatalf("%s /userinfo %d %v", method, status, info)
		}
	}

	// An ID token is not an access token anywhere.
	if status, challenge, _ := e.oiUserinfo(http.MethodGet, idt); status != http.StatusUnauthorized || !strings.Contains(challenge, "invalid_token") {
		t.Errorf("/userinfo with the ID token: %d %q", status, challenge)
	}
	if status, _ := e.validate(idt); status != http.StatusUnauthorized {
		t.Errorf("/validate with the ID token: %d", status)
	}
	if in := e.introspect(app, idt); in["active"] != false {
		t.Errorf("introspection of the ID token: %v", in)
	}

	oiRefresh(t, e, km, app, tok, c)
}

// oiRefresh checks the ID token of a refresh of the grant behind tok,
// whose first ID token had claims c, and of a refresh narrowed to drop openid.
func oiRefresh(t *testing.T, e *azEnv, km *keys.Manager, app azClient, tok *oauth2.Token, c map[string]any) {
	idt, _ := tok.Extra("id_token").(string)
	// Refresh: a fresh ID token, same subject and auth_time, no nonce.
	ref, err := e.oauth2Config(app).TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	idt2, _ := ref.Extra("id_token").(string)
	c2 := oiClaims(t, km, idt2)
	if idt2 == idt || c2["sub"] != "eneco/alice" || c2["auth_time"] != c["auth_time"] || c2["aud"] != app.ID {
		t.Errorf("refreshed ID token claims %v", c2)
	}
	if _, ok := c2["nonce"]; ok || c2["at_hash"] != oiHalfHash(ref.AccessToken) {
		t.Errorf("refreshed ID token: nonce %v at_hash %v", c2["nonce"], c2["at_hash"])
	}

	// Narrowing the refresh to read drops openid: no ID token, and no
	// /userinfo for that access token.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {ref.RefreshToken}, "scope": {"read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(app.ID, app.Secret)
	var narrow struct {
		AccessToken string `json:"access_token"`
		IDToken     string `json:"id_token"`
		Scope       string `json:"scope"`
	}
	if p := azDo(t, e.srv.Client(), req); p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &narrow) != nil || narrow.Scope != "read" {
		t.Fatalf("narrowed refresh: %d %s", p.status, p.body)
	}
	if narrow.IDToken != "" {
		t.Errorf("ID token for a refresh without openid")
	}
	if status, challenge, _ := e.oiUserinfo(http.MethodGet, narrow.AccessToken); status != http.StatusForbidden || !strings.Contains(challenge, "insufficient_scope") {
		t.Errorf("/userinfo without openid: %d %q", status, challenge)
	}
}

func TestOIDCImplicitIDToken(t *testing.T) {
	var km *keys.Manager
	e := newAZEnv(t, nil, withKeys(t, nil, &km))
	spa := e.client("SPA", []string{"https://spa.example/cb"}, []string{"implicit"}, []string{"read"}, true)
	e.oiUser("eneco", "alice", "pw", map[string]any{"name": "Alice", "email": "alice@example.com"})
	b := e.browser()

	// A nonce is required for the implicit types; errors go in the fragment.
	e.authorize(b, oiAuthQuery(spa, "id_token", "openid", "s0", "")).wantError(t, spa.Redirect, true, "invalid_request", "s0")
	// id_token without openid is no OpenID request.
	e.authorize(b, oiAuthQuery(spa, "id_token", "read", "s0", "n")).wantError(t, spa.Redirect, true, "invalid_scope", "s0")

	// id_token alone: no access token, so the claims are in the ID token.
	page := e.authorize(b, oiAuthQuery(spa, "id_token", "openid profile email", "s1", "nonce-1"))
	page = e.login(b, page, "alice", "pw")
	v := e.consent(b, page, "allow").redirected(t, spa.Redirect, true)
	if v.Has("access_token") || v.Has("code") || v.Get("state") != "s1" {
		t.Fatalf("fragment %v", v)
	}
	c := oiClaims(t, km, v.Get("id_token"))
	if c["nonce"] != "nonce-1" || c["name"] != "Alice" || c["email"] != "alice@example.com" || c["email_verified"] != false ||
		c["preferred_username"] != "alice" || c["aud"] != spa.ID {
		t.Errorf("id_token claims %v", c)
	}
	if _, ok := c["at_hash"]; ok {
		t.Errorf("at_hash without an access token: %v", c)
	}

	// "token id_token" in any order: both, at_hash, no profile claims.
	// The session and the remembered consent skip both pages.
	p := e.authorize(b, oiAuthQuery(spa, "token id_token", "openid profile", "s2", "nonce-2"))
	v = p.redirected(t, spa.Redirect, true)
	c = oiClaims(t, km, v.Get("id_token"))
	if v.Get("access_token") == "" || c["at_hash"] != oiHalfHash(v.Get("access_token")) || c["nonce"] != "nonce-2" {
		t.Fatalf("fragment %v claims %v", v, c)
	}
	if _, ok := c["name"]; ok {
		t.Errorf("profile claims in an ID token issued with an access token: %v", c)
	}
	if status, _, info := e.oiUserinfo(http.MethodGet, v.Get("access_token")); status != http.StatusOK || info["name"] != "Alice" {
		t.Errorf("/userinfo %d %v", status, info)
	}
}

func TestOIDCSingleSignOnPromptAndConsentMemory(t *testing.T) {
	clock := &azClock{t: time.Now()}
	e := newAZEnv(t, clock.Now, withKeys(t, clock.Now, nil))
	app := e.client("RP", []string{"https://rp.example/cb"}, nil, []string{"read"}, false)
	other := e.client("Other", []string{"https://other.example/cb"}, nil, nil, false)
	e.oiUser("eneco", "alice", "pw", nil)
	b := e.browser()

	// Not signed in: prompt=none says so without a page.
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s0", "n", "prompt", "none")).wantError(t, app.Redirect, false, "login_required", "s0")
	// login_hint fills in the username.
	page := e.authorize(b, oiAuthQuery(app, "code", "openid", "s1", "n", "login_hint", "alice"))
	page.wantPage(t, http.StatusOK, `value="alice"`)
	page = e.login(b, page, "alice", "pw")
	if strings.Contains(page.body, "Not you?") {
		t.Error("the consent page right after the password offers to sign out")
	}
	e.consent(b, page, "allow").redirected(t, app.Redirect, false)

	// Signed in and consented: no page at all, prompt=none or not.
	for _, prompt := range []string{"none", ""} {
		v := e.authorize(b, oiAuthQuery(app, "code", "openid", "s2", "n", "prompt", prompt)).redirected(t, app.Redirect, false)
		if v.Get("code") == "" || v.Get("state") != "s2" {
			t.Fatalf("prompt=%q: redirect %v", prompt, v)
		}
	}
	// A scope not consented yet: consent_required, or the consent page
	// without the login page.
	e.authorize(b, oiAuthQuery(app, "code", "openid read", "s3", "n", "prompt", "none")).wantError(t, app.Redirect, false, "consent_required", "s3")
	page = e.authorize(b, oiAuthQuery(app, "code", "openid read", "s3", "n"))
	page.wantPage(t, http.StatusOK, `Not you? <a href="/end_session"`)
	e.consent(b, page, "allow").redirected(t, app.Redirect, false)
	e.authorize(b, oiAuthQuery(app, "code", "openid read", "s4", "n", "prompt", "none")).redirected(t, app.Redirect, false)
	// Another client has no consent.
	e.authorize(b, oiAuthQuery(other, "code", "openid", "s5", "n", "prompt", "none")).wantError(t, other.Redirect, false, "consent_required", "s5")
	oiForgetConsent(t, e, app)
	e.authorize(b, oiAuthQuery(app, "code", "openid read", "s5", "n", "prompt", "none")).wantError(t, app.Redirect, false, "consent_required", "s5")
	page = e.authorize(b, oiAuthQuery(app, "code", "openid read", "s5", "n"))
	e.consent(b, page, "allow").redirected(t, app.Redirect, false)
	// prompt=consent and prompt=login ask again.
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s6", "n", "prompt", "consent")).wantPage(t, http.StatusOK, "wants to access your account")
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s6", "n", "prompt", "login")).wantPage(t, http.StatusOK, "Sign in")
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s6", "n", "prompt", "none login")).wantError(t, app.Redirect, false, "invalid_request", "s6")
	// Another user named, or another tenant: interaction_required.
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s7", "n", "prompt", "none", "login_hint", "bob")).wantError(t, app.Redirect, false, "interaction_required", "s7")
	// max_age: the sign-in is too old after 10 minutes.
	clock.Add(10 * time.Minute)
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s8", "n", "prompt", "none", "max_age", "3600")).redirected(t, app.Redirect, false)
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s8", "n", "prompt", "none", "max_age", "60")).wantError(t, app.Redirect, false, "login_required", "s8")
	page = e.authorize(b, oiAuthQuery(app, "code", "openid", "s9", "n", "max_age", "60"))
	page = e.login(b, page, "alice", "pw")
	// Consent is remembered: a fresh login goes straight back.
	if v := page.redirected(t, app.Redirect, false); v.Get("code") == "" {
		t.Fatalf("after re-login: %v", v)
	}
	e.authorize(b, oiAuthQuery(app, "code", "openid", "s8", "n", "prompt", "none", "max_age", "60")).redirected(t, app.Redirect, false)

	// Plain OAuth requests still ask every time.
	e.authorize(b, oiAuthQuery(app, "code", "read", "s10", "")).wantPage(t, http.StatusOK, "Sign in")
	e.authorize(b, oiAuthQuery(app, "code", "read", "s10", "", "prompt", "none")).wantError(t, app.Redirect, false, "login_required", "s10")
	// A browser without the cookie is not signed in.
	e.authorize(e.browser(), oiAuthQuery(app, "code", "openid", "s11", "n", "prompt", "none")).wantError(t, app.Redirect, false, "login_required", "s11")
}

func TestOIDCEndSession(t *testing.T) {
	var km *keys.Manager
	e := newAZEnv(t, nil, withKeys(t, nil, &km))
	resp := e.admin(http.MethodPost, "/admin/clients", map[string]any{"name": "RP", "redirect_uris": []string{"https://rp.example/cb"},
		"post_logout_redirect_uris": []string{"https://rp.example/bye?x=1"}})
	var reg struct {
		ClientID     string   `json:"client_id"`
		ClientSecret string   `json:"client_secret"`
		PostLogout   []string `json:"post_logout_redirect_uris"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&reg) != nil || len(reg.PostLogout) != 1 {
		t.Fatalf("create client: %d %v", resp.StatusCode, reg)
	}
	resp.Body.Close()
	app := azClient{ID: reg.ClientID, Secret: reg.ClientSecret, Redirect: "https://rp.example/cb"}
	e.oiUser("eneco", "alice", "pw", nil)
	b := e.browser()
	page := e.login(b, e.authorize(b, oiAuthQuery(app, "code", "openid", "s", "n")), "alice", "pw")
	v := e.consent(b, page, "allow").redirected(t, app.Redirect, false)
	tok, err := e.oauth2Config(app).Exchange(e.ctx(), v.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	idt := tok.Extra("id_token").(string)

	// Refused: an unregistered target, a forged hint, a client_id that
	// disagrees with the hint. Nothing ends and nothing redirects.
	for _, q := range []url.Values{
		{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://rp.example/bye"}},
		{"post_logout_redirect_uri": {"https://rp.example/bye?x=1"}},
		{"id_token_hint": {idt[:len(idt)-4] + "AAAA"}, "post_logout_redirect_uri": {"https://rp.example/bye?x=1"}},
		{"id_token_hint": {idt}, "client_id": {"someone-else"}},
	} {
		e.get(b, "/end_session?"+q.Encode()).wantPage(t, http.StatusBadRequest, "Invalid sign-out request")
	}
	e.authorize(b, oiAuthQuery(app, "code", "openid", "still", "n", "prompt", "none")).redirected(t, app.Redirect, false)

	p := e.get(b, "/end_session?"+url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://rp.example/bye?x=1"},
		"state": {"bye-state"}}.Encode())
	if p.status != http.StatusFound || p.header.Get("Location") != "https://rp.example/bye?x=1&state=bye-state" {
		t.Fatalf("end_session: %d Location %q", p.status, p.header.Get("Location"))
	}
	if ck := p.header.Get("Set-Cookie"); !strings.Contains(ck, "tokend_session=;") || !strings.Contains(ck, "Max-Age=0") {
		t.Errorf("cookie not cleared: %q", ck)
	}
	e.authorize(b, oiAuthQuery(app, "code", "openid", "after", "n", "prompt", "none")).wantError(t, app.Redirect, false, "login_required", "after")

	// Without a target: the signed-out page, by GET or POST.
	e.get(b, "/end_session").wantPage(t, http.StatusOK, "You are signed out")
	e.post(b, "/end_session", url.Values{"id_token_hint": {idt}}).wantPage(t, http.StatusOK, "You have signed out of <strong>RP</strong>")

	// Without id_token_hint a signed-in browser is asked first: neither a
	// GET nor a post without the page's logout_token signs it out.
	page = e.login(b, e.authorize(b, oiAuthQuery(app, "code", "openid", "s2", "n")), "alice", "pw")
	page.redirected(t, app.Redirect, false) // consent remembered
	q := url.Values{"client_id": {app.ID}, "post_logout_redirect_uri": {"https://rp.example/bye?x=1"}, "state": {"st"}}
	confirm := e.get(b, "/end_session?"+q.Encode())
	confirm.wantPage(t, http.StatusOK, "asks to sign you out")
	e.post(b, "/end_session", q).wantPage(t, http.StatusOK, "Sign out?")
	forged := url.Values{"logout_token": {"AAAA"}}
	for k, v := range q {
		forged[k] = v
	}
	e.post(b, "/end_session", forged).wantPage(t, http.StatusOK, "Sign out?")
	e.authorize(b, oiAuthQuery(app, "code", "openid", "alive", "n", "prompt", "none")).redirected(t, app.Redirect, false)
	action, f := confirm.form(t)
	if p := e.post(b, action, f); p.status != http.StatusSeeOther || p.header.Get("Location") != "https://rp.example/bye?x=1&state=st" {
		t.Fatalf("confirmed logout: %d %q", p.status, p.header.Get("Location"))
	}
	e.authorize(b, oiAuthQuery(app, "code", "openid", "gone", "n", "prompt", "none")).wantError(t, app.Redirect, false, "login_required", "gone")
}

func TestOIDCWithoutSigner(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("RP", []string{"https://rp.example/cb"}, []string{"authorization_code", "implicit"}, nil, false)
	b := e.browser()
	v := e.authorize(b, oiAuthQuery(app, "code", "openid", "s", "n")).wantError(t, app.Redirect, false, "invalid_scope", "s")
	if !strings.Contains(v.Get("error_description"), "OpenID Connect is not enabled") {
		t.Errorf("description %q", v.Get("error_description"))
	}
	e.authorize(b, oiAuthQuery(app, "id_token", "openid", "s", "n")).wantError(t, app.Redirect, false, "unsupported_response_type", "s")
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
		if p := e.get(b, path); p.status != http.StatusNotFound || !strings.Contains(p.body, "not enabled") {
			t.Errorf("%s: %d %s", path, p.status, p.body)
		}
	}
	var md map[string]any
	if err := json.Unmarshal([]byte(e.get(b, "/.well-known/oauth-authorization-server").body), &md); err != nil {
		t.Fatal(err)
	}
	if _, ok := md["jwks_uri"]; ok {
		t.Errorf("metadata advertises jwks_uri without a Signer: %v", md)
	}
	// profile and email are ordinary scopes without OpenID Connect.
	e.authorize(b, oiAuthQuery(app, "code", "profile", "s", "")).wantError(t, app.Redirect, false, "invalid_scope", "s")
}

func TestOIDCDiscoveryAndJWKS(t *testing.T) {
	e := newAZEnv(t, nil, withKeys(t, nil, nil))
	b := e.browser()
	var oauthMD, oidcMD map[string]any
	for path, dst := range map[string]*map[string]any{"/.well-known/oauth-authorization-server": &oauthMD, "/.well-known/openid-configuration": &oidcMD} {
		p := e.get(b, path)
		if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), dst) != nil {
			t.Fatalf("%s: %d %s", path, p.status, p.body)
		}
	}
	for k, v := range oauthMD {
		if got, _ := json.Marshal(oidcMD[k]); string(got) != mustJSON(t, v) {
			t.Errorf("%s: RFC 8414 says %v, OpenID discovery %v", k, v, oidcMD[k])
		}
	}
	for k, want := range map[string]string{"issuer": azIssuer, "jwks_uri": azIssuer + "/.well-known/jwks.json",
		"userinfo_endpoint": azIssuer + "/userinfo", "end_session_endpoint": azIssuer + "/end_session",
		"authorization_endpoint": azIssuer + "/authorize", "token_endpoint": azIssuer + "/token"} {
		if oidcMD[k] != want {
			t.Errorf("%s = %v, want %s", k, oidcMD[k], want)
		}
	}
	for k, want := range map[string]string{"id_token_signing_alg_values_supported": `["ES256"]`, "subject_types_supported": `["public"]`,
		"response_types_supported": `["code","token","id_token","id_token token","code id_token"]`, "scopes_supported": `["openid","profile","email"]`} {
		if got := mustJSON(t, oidcMD[k]); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	p := e.get(b, "/.well-known/jwks.json")
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &set) != nil ||
		!strings.Contains(p.header.Get("Cache-Control"), "max-age=") || p.header.Get("ETag") == "" {
		t.Fatalf("jwks: %d %v %s", p.status, p.header, p.body)
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/.well-known/jwks.json", nil)
	req.Header.Set("If-None-Match", p.header.Get("ETag"))
	if p2 := azDo(t, b, req); p2.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", p2.status)
	}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			t.Fatalf("private key material in the JWKS: %v", k)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAdminUserClaimsAndPostLogoutURIs(t *testing.T) {
	e := newAZEnv(t, nil)
	e.oiUser("eneco", "alice", "pw", map[string]any{"name": " Alice ", "email": "alice@example.com", "preferred_username": "al"})
	put := func(body map[string]any) (int, map[string]any) {
		resp := e.admin(http.MethodPut, "/admin/users/eneco/alice", body)
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	// Absent fields are kept; email_verified; a password alone still works.
	status, v := put(map[string]any{"email_verified": true})
	if status != http.StatusOK || v["name"] != "Alice" || v["email"] != "alice@example.com" || v["email_verified"] != true || v["preferred_username"] != "al" {
		t.Fatalf("PUT claims: %d %v", status, v)
	}
	if status, v = put(map[string]any{"password": "new"}); status != http.StatusOK || v["name"] != "Alice" {
		t.Fatalf("PUT password: %d %v", status, v)
	}
	// Clearing the email clears email_verified.
	if status, v = put(map[string]any{"email": ""}); status != http.StatusOK || v["email"] != nil || v["email_verified"] != false {
		t.Fatalf("PUT email \"\": %d %v", status, v)
	}
	for _, bad := range []map[string]any{{"email": "not an address"}, {"name": strings.Repeat("x", 201)}, {"name": "a\nb"}, {"password": ""}} {
		if status, _ := put(bad); status != http.StatusBadRequest {
			t.Errorf("PUT %v: %d, want 400", bad, status)
		}
	}
	resp := e.admin(http.MethodPost, "/admin/clients", map[string]any{"name": "RP", "redirect_uris": []string{"https://rp.example/cb"},
		"post_logout_redirect_uris": []string{"javascript:alert(1)"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("javascript: post-logout URI registered: %d", resp.StatusCode)
	}
}

func TestOIDCUserinfoRequests(t *testing.T) {
	e := newAZEnv(t, nil, withKeys(t, nil, nil))
	// A client that registered openid may use it on the password grant
	// too; its tokens then reach /userinfo.
	app := e.client("Svc", []string{"https://svc.example/cb"}, []string{"password", "refresh_token"}, []string{"openid", "profile"}, false)
	e.oiUser("default", "bob", "pw", map[string]any{"name": "Bob"})
	tok, err := e.oauth2Config(app, "openid", "profile").PasswordCredentialsToken(e.ctx(), "bob", "pw")
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, auth, contentType, body string) (int, string, string) {
		req, _ := http.NewRequest(method, e.srv.URL+"/userinfo", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		p := azDo(t, e.srv.Client(), req)
		return p.status, p.header.Get("WWW-Authenticate"), p.body
	}
	// That is no OpenID sign-in: no ID token, on refresh neither.
	ref, err := e.oauth2Config(app).TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || tok.Extra("id_token") != nil || ref.Extra("id_token") != nil {
		t.Fatalf("password grant with openid: id_token %v, on refresh %v (%v)", tok.Extra("id_token"), ref.Extra("id_token"), err)
	}
	form := "application/x-www-form-urlencoded"
	for _, c := range []struct {
		method, auth, contentType, body string
		status                          int
		want                            string
	}{
		{http.MethodGet, "Bearer " + tok.AccessToken, "", "", http.StatusOK, `"name":"Bob"`},
		{http.MethodPost, "", form, "access_token=" + url.QueryEscape(tok.AccessToken), http.StatusOK, `"sub":"default/bob"`},
		{http.MethodGet, "", "", "", http.StatusUnauthorized, `Bearer realm="tokend"`},
		{http.MethodPost, "", "", "", http.StatusUnauthorized, `Bearer realm="tokend"`},
		{http.MethodGet, "Basic Ym9iOnB3", "", "", http.StatusUnauthorized, `Bearer realm="tokend"`},
		{http.MethodGet, "Bearer tkda-unknown", "", "", http.StatusUnauthorized, `error="invalid_token"`},
	} {
		status, challenge, body := call(c.method, c.auth, c.contentType, c.body)
		if status != c.status || !strings.Contains(challenge+body, c.want) {
			t.Errorf("%s %q %q: %d %q %s, want %d with %s", c.method, c.auth, c.body, status, challenge, body, c.status, c.want)
		}
	}
	// The user is deleted: the token is revoked with the grant.
	e.admin(http.MethodDelete, "/admin/users/default/bob", nil).Body.Close()
	if status, challenge, _ := call(http.MethodGet, "Bearer "+tok.AccessToken, "", ""); status != http.StatusUnauthorized || !strings.Contains(challenge, "invalid_token") {
		t.Errorf("after the user is deleted: %d %q", status, challenge)
	}
}

func TestOIDCHybridCodeIDToken(t *testing.T) {
	var km *keys.Manager
	e := newAZEnv(t, nil, withKeys(t, nil, &km))
	app := e.client("Hybrid", []string{"https://rp.example/cb"}, []string{"authorization_code", "implicit"}, []string{"read"}, false)
	codeOnly := e.client("Code only", []string{"https://co.example/cb"}, []string{"authorization_code"}, nil, false)
	e.oiUser("eneco", "alice", "pw", map[string]any{"name": "Alice"})
	b := e.browser()
	e.authorize(b, oiAuthQuery(app, "id_token code", "openid", "s0", "")).wantError(t, app.Redirect, true, "invalid_request", "s0")
	e.authorize(b, oiAuthQuery(codeOnly, "code id_token", "openid", "s0", "n")).wantError(t, codeOnly.Redirect, true, "unauthorized_client", "s0")

	page := e.login(b, e.authorize(b, oiAuthQuery(app, "id_token code", "openid profile", "s1", "hybrid-nonce")), "alice", "pw")
	v := e.consent(b, page, "allow").redirected(t, app.Redirect, true)
	code := v.Get("code")
	c := oiClaims(t, km, v.Get("id_token"))
	if code == "" || v.Has("access_token") || c["c_hash"] != oiHalfHash(code) || c["nonce"] != "hybrid-nonce" {
		t.Fatalf("fragment %v claims %v", v, c)
	}
	if _, ok := c["name"]; ok {
		t.Errorf("profile claims in the front-channel ID token although the code brings an access token: %v", c)
	}
	tok, err := e.oauth2Config(app).Exchange(e.ctx(), code)
	if err != nil {
		t.Fatal(err)
	}
	c2 := oiClaims(t, km, tok.Extra("id_token").(string))
	if c2["nonce"] != "hybrid-nonce" || c2["sub"] != c["sub"] || c2["at_hash"] != oiHalfHash(tok.AccessToken) {
		t.Errorf("token endpoint ID token %v", c2)
	}
}

// oiForgetConsent reads and forgets alice's remembered consent for app
// through the admin API.
func oiForgetConsent(t *testing.T, e *azEnv, app azClient) {
	t.Helper()
	path := "/admin/users/eneco/alice/consents/" + app.ID
	resp := e.admin(http.MethodGet, path, nil)
	var v map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || v["scope"] != "openid read" || v["client_id"] != app.ID {
		t.Fatalf("GET consent: %d %v", resp.StatusCode, v)
	}
	for _, want := range []int{http.StatusOK, http.StatusNotFound} {
		resp := e.admin(http.MethodDelete, path, nil)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("DELETE consent: %d, want %d", resp.StatusCode, want)
		}
	}
	resp = e.admin(http.MethodGet, path, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET a forgotten consent: %d", resp.StatusCode)
	}
}

// A revocation of the user's grants and a new password both sign the user
// out: a browser that signed in before gets no new code without the
// password.
func TestOIDCRevokeAndNewPasswordEndSessions(t *testing.T) {
	e := newAZEnv(t, nil, withKeys(t, nil, nil))
	app := e.client("RP", []string{"https://rp.example/cb"}, nil, nil, false)
	e.oiUser("eneco", "alice", "pw", nil)
	b := e.browser()
	signIn := func(password string) {
		t.Helper()
		page := e.login(b, e.authorize(b, oiAuthQuery(app, "code", "openid", "in", "n")), "alice", password)
		if page.status == http.StatusOK {
			page = e.consent(b, page, "allow")
		}
		page.redirected(t, app.Redirect, false)
		e.authorize(b, oiAuthQuery(app, "code", "openid", "sso", "n", "prompt", "none")).redirected(t, app.Redirect, false)
	}
	signIn("pw")
	resp := e.admin(http.MethodPost, "/admin/revoke", map[string]any{"tenant": "eneco", "username": "alice"})
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || out["ended_sessions"] != float64(1) {
		t.Fatalf("revoke: %d %v", resp.StatusCode, out)
	}
	e.authorize(b, oiAuthQuery(app, "code", "openid", "r", "n", "prompt", "none")).wantError(t, app.Redirect, false, "login_required", "r")

	signIn("pw")
	e.admin(http.MethodPut, "/admin/users/eneco/alice", map[string]any{"name": "Alice"}).Body.Close() // claims only: still signed in
	e.authorize(b, oiAuthQuery(app, "code", "openid", "c", "n", "prompt", "none")).redirected(t, app.Redirect, false)
	resp = e.admin(http.MethodPut, "/admin/users/eneco/alice", map[string]any{"password": "new"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("new password: %d", resp.StatusCode)
	}
	e.authorize(b, oiAuthQuery(app, "code", "openid", "p", "n", "prompt", "none")).wantError(t, app.Redirect, false, "login_required", "p")
}
