package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
)

// HTTP-level tests of /authorize and its login and consent pages against a
// real httpapi.Server over a single-process replicator. Helpers carry an az
// prefix so they cannot collide with other test files of the package.

const (
	azAdminToken = "test-admin-token-0123456789abcdef0123456789"
	azIssuer     = "http://tokend.test"
)

// azClock is a settable clock.
type azClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *azClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *azClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type azEnv struct {
	t   *testing.T
	srv *httptest.Server
}

func newAZEnv(t *testing.T, now func() time.Time, opts ...func(*httpapi.Config)) *azEnv {
	t.Helper()
	f := fsm.New()
	cfg := httpapi.Config{
		FSM: f, Replicator: httpapi.NewMemReplicator(f), AdminToken: azAdminToken, Issuer: azIssuer,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &azEnv{t: t, srv: srv}
}

type azClient struct {
	ID, Secret string
	Redirect   string
}

func (e *azEnv) admin(method, path string, body any) *http.Response {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+azAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *azEnv) client(name string, redirects, grants, scopes []string, public bool) azClient {
	e.t.Helper()
	resp := e.admin(http.MethodPost, "/admin/clients", map[string]any{
		"name": name, "redirect_uris": redirects, "grant_types": grants, "scopes": scopes, "public": public,
	})
	defer resp.Body.Close()
	var v struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&v) != nil {
		e.t.Fatalf("create client: %d", resp.StatusCode)
	}
	return azClient{ID: v.ClientID, Secret: v.ClientSecret, Redirect: redirects[0]}
}

func (e *azEnv) user(tenant, username, password string) {
	e.t.Helper()
	resp := e.admin(http.MethodPost, "/admin/users", map[string]string{"tenant": tenant, "username": username, "password": password})
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create user: %d", resp.StatusCode)
	}
}

// browser returns a client with a cookie jar that does not follow redirects.
func (e *azEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type azPage struct {
	status int
	header http.Header
	body   string
}

func azDo(t *testing.T, c *http.Client, req *http.Request) azPage {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return azPage{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (e *azEnv) get(c *http.Client, pathAndQuery string) azPage {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+pathAndQuery, nil)
	return azDo(e.t, c, req)
}

func (e *azEnv) post(c *http.Client, path string, f url.Values) azPage {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return azDo(e.t, c, req)
}

// authorize opens /authorize with q.
func (e *azEnv) authorize(c *http.Client, q url.Values) azPage {
	e.t.Helper()
	return e.get(c, "/authorize?"+q.Encode())
}

var (
	azFormRe   = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	azHiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// form returns the page's form action and hidden fields.
func (p azPage) form(t *testing.T) (string, url.Values) {
	t.Helper()
	m := azFormRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no form in page (%d):\n%s", p.status, p.body)
	}
	f := url.Values{}
	for _, h := range azHiddenRe.FindAllStringSubmatch(p.body, -1) {
		f.Set(h[1], html.UnescapeString(h[2]))
	}
	return html.UnescapeString(m[1]), f
}

// login posts the login page's form.
func (e *azEnv) login(c *http.Client, page azPage, username, password string, extra ...string) azPage {
	e.t.Helper()
	action, f := page.form(e.t)
	f.Set("username", username)
	f.Set("password", password)
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return e.post(c, action, f)
}

// consent presses allow or deny on the consent page.
func (e *azEnv) consent(c *http.Client, page azPage, choice string) azPage {
	e.t.Helper()
	action, f := page.form(e.t)
	f.Set("consent", choice)
	return e.post(c, action, f)
}

// redirected checks that p redirects to the client and returns the
// parameters (query, or fragment when fragment is set).
func (p azPage) redirected(t *testing.T, redirect string, fragment bool) url.Values {
	t.Helper()
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("status %d, want a redirect; body:\n%s", p.status, p.body)
	}
	loc := p.header.Get("Location")
	sep := "?"
	if strings.Contains(redirect, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(loc, redirect+sep) && !strings.HasPrefix(loc, redirect+"#") {
		t.Fatalf("Location %q does not go to %q", loc, redirect)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	raw := u.RawQuery
	if fragment {
		if raw != "" {
			t.Fatalf("implicit response has a query: %q", loc)
		}
		raw = u.Fragment
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("iss") != azIssuer {
		t.Errorf("iss = %q, want %q", v.Get("iss"), azIssuer)
	}
	return v
}

func (p azPage) wantError(t *testing.T, redirect string, fragment bool, code, state string) url.Values {
	t.Helper()
	v := p.redirected(t, redirect, fragment)
	if v.Get("error") != code || v.Get("state") != state || v.Get("error_description") == "" {
		t.Fatalf("redirect params %v, want error=%s state=%s with a description", v, code, state)
	}
	return v
}

// wantPage checks an HTML page that must not redirect anywhere.
func (p azPage) wantPage(t *testing.T, status int, contains string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", p.status, status, p.body)
	}
	if loc := p.header.Get("Location"); loc != "" {
		t.Fatalf("unexpected Location %q", loc)
	}
	if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type %q", ct)
	}
	if !strings.Contains(p.body, contains) {
		t.Fatalf("page does not contain %q:\n%s", contains, p.body)
	}
}

func (e *azEnv) oauth2Config(c azClient, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if c.Secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID: c.ID, ClientSecret: c.Secret, RedirectURL: c.Redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: e.srv.URL + "/authorize", TokenURL: e.srv.URL + "/token", AuthStyle: style},
	}
}

func (e *azEnv) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, e.srv.Client())
}

// validate calls /validate and returns the status and headers.
func (e *azEnv) validate(token string) (int, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/validate", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func (e *azEnv) introspect(c azClient, token string) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.ID, c.Secret)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func wantRetrieveError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

// codeFlow runs /authorize → login → consent(allow) and returns the code.
func (e *azEnv) codeFlow(authURL, username, password string, c azClient, state string) string {
	e.t.Helper()
	b := e.browser()
	page := e.get(b, strings.TrimPrefix(authURL, e.srv.URL))
	page.wantPage(e.t, http.StatusOK, "Sign in")
	page = e.login(b, page, username, password)
	page.wantPage(e.t, http.StatusOK, "wants to access your account")
	v := e.consent(b, page, "allow").redirected(e.t, c.Redirect, false)
	if v.Get("state") != state || v.Get("code") == "" {
		e.t.Fatalf("redirect params %v", v)
	}
	return v.Get("code")
}

func TestAuthorizeCodeFlowPKCE(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("Toon Demo", []string{"https://app.example/callback"}, nil, []string{"read", "write"}, false)
	e.user("eneco", "alice", "alice-pw")
	e.user("default", "alice", "other-pw") // same name, other tenant
	cfg := e.oauth2Config(app, "read")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("xyz", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("tenant_id", "eneco"))

	b := e.browser()
	page := e.get(b, strings.TrimPrefix(authURL, e.srv.URL))
	page.wantPage(t, http.StatusOK, "Toon Demo")
	for k, want := range map[string]string{
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "frame-ancestors 'none'",
	} {
		if got := page.header.Get(k); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := page.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	cookie := page.header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Max-Age="} {
		if !strings.Contains(cookie, want) {
			t.Errorf("Set-Cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("Set-Cookie %q is Secure without TLS configured", cookie)
	}
	_, hidden := page.form(t)
	if hidden.Get("tenant_id") != "eneco" || hidden.Get("csrf_token") == "" || hidden.Get("request_id") == "" {
		t.Fatalf("hidden fields %v", hidden)
	}
	if strings.Contains(page.body, `id="tenant_id"`) {
		t.Error("tenant field is visible although the request named the tenant")
	}
	for _, want := range []string{`<label for="username">`, `<label for="password">`, `name="viewport"`, `autofocus`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}

	// The default tenant's alice has another password: the tenant matters.
	wrong := e.login(b, page, "alice", "other-pw")
	wrong.wantPage(t, http.StatusUnauthorized, "Incorrect username or password")
	page = e.login(b, page, "alice", "alice-pw")
	page.wantPage(t, http.StatusOK, "Toon Demo")
	if !strings.Contains(page.body, "<code>read</code>") || strings.Contains(page.body, "<code>write</code>") {
		t.Errorf("consent page does not list exactly the requested scope:\n%s", page.body)
	}
	if !strings.Contains(page.body, `name="consent" value="allow"`) || !strings.Contains(page.body, `name="consent" value="deny"`) {
		t.Error("consent page lacks the allow and deny buttons")
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://app.example") {
		t.Errorf("consent CSP %q does not allow the redirect origin", csp)
	}
	resp := e.consent(b, page, "allow")
	if resp.status != http.StatusSeeOther {
		t.Errorf("consent status %d, want 303", resp.status)
	}
	v := resp.redirected(t, app.Redirect, false)
	if v.Get("state") != "xyz" || !strings.HasPrefix(v.Get("code"), "tkdc-") || len(v.Get("code")) < 43 {
		t.Fatalf("redirect params %v", v)
	}
	code := v.Get("code")

	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.Extra("scope") != "read" {
		t.Errorf("token response: refresh %q scope %v", tok.RefreshToken, tok.Extra("scope"))
	}
	status, h := e.validate(tok.AccessToken)
	if status != http.StatusOK || h.Get("X-Token-Tenant") != "eneco" || h.Get("X-Token-Subject") != "eneco/alice" ||
		h.Get("X-Token-Client-Id") != app.ID || h.Get("X-Token-Scope") != "read" {
		t.Fatalf("/validate %d %v", status, h)
	}
	in := e.introspect(app, tok.AccessToken)
	if in["active"] != true || in["tenant_id"] != "eneco" || in["username"] != "alice" {
		t.Fatalf("introspection %v", in)
	}

	// Replay: invalid_grant, and what the first exchange issued is revoked.
	_, err = cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	wantRetrieveError(t, err, "invalid_grant")
	if status, _ := e.validate(tok.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("access token after code replay: /validate %d, want 401", status)
	}
	if in := e.introspect(app, tok.RefreshToken); in["active"] != false {
		t.Fatalf("refresh token after code replay: %v", in)
	}

	// The consent post cannot be replayed either.
	e.consent(b, page, "allow").wantPage(t, http.StatusBadRequest, "expired")
}

func TestAuthorizeSeedFlow(t *testing.T) {
	// The Toon guide's calls as written: no PKCE, no redirect_uri at
	// /token, client credentials in the body, tenant_id on /authorize.
	e := newAZEnv(t, nil)
	app := e.client("Toon", []string{"https://app.example/cb?from=tokend"}, nil, nil, false)
	e.user("eneco", "bob", "pw")
	b := e.browser()
	page := e.authorize(b, url.Values{"response_type": {"code"}, "redirect_uri": {app.Redirect}, "client_id": {app.ID}, "tenant_id": {"eneco"}})
	page.wantPage(t, http.StatusOK, "eneco")
	page = e.login(b, page, "bob", "pw")
	v := e.consent(b, page, "allow").redirected(t, app.Redirect, false)
	if v.Get("from") != "tokend" || v.Get("state") != "" {
		t.Fatalf("redirect params %v: registered query must be kept, no state when none was sent", v)
	}
	resp, err := http.PostForm(e.srv.URL+"/token", url.Values{
		"client_id": {app.ID}, "client_secret": {app.Secret}, "grant_type": {"authorization_code"}, "code": {v.Get("code")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	if resp.StatusCode != http.StatusOK || tok["access_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("/token %d %v", resp.StatusCode, tok)
	}

	// The same at /oauth/authorize, with redirect_uri omitted.
	page = e.get(b, "/oauth/authorize?"+url.Values{"response_type": {"code"}, "client_id": {app.ID}, "tenant_id": {"eneco"}}.Encode())
	if action, _ := page.form(t); action != "/oauth/authorize/login" {
		t.Fatalf("form action %q", action)
	}
	page = e.login(b, page, "bob", "pw")
	if action, _ := page.form(t); action != "/oauth/authorize/consent" {
		t.Fatalf("form action %q", action)
	}
	e.consent(b, page, "allow").redirected(t, app.Redirect, false)
}

func TestAuthorizePublicClientPKCE(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("Mobile", []string{"http://127.0.0.1:9/cb"}, nil, nil, true)
	e.user("", "carol", "pw")
	cfg := e.oauth2Config(app)

	// Without PKCE: refused by redirect.
	b := e.browser()
	e.authorize(b, url.Values{"response_type": {"code"}, "client_id": {app.ID}, "state": {"s1"}}).
		wantError(t, app.Redirect, false, "invalid_request", "s1")

	// With PKCE, no tenant named: the tenant field is visible and empty
	// means "default".
	verifier := oauth2.GenerateVerifier()
	page := e.get(b, strings.TrimPrefix(cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)), e.srv.URL))
	if !strings.Contains(page.body, `<label for="tenant_id">`) {
		t.Fatal("tenant field missing when no tenant_id was given")
	}
	page = e.login(b, page, "carol", "pw", "tenant_id", "")
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:9;") {
		t.Errorf("consent CSP %q", csp)
	}
	code := e.consent(b, page, "allow").redirected(t, app.Redirect, false).Get("code")

	// A wrong verifier, and none at all, do not redeem it.
	_, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantRetrieveError(t, err, "invalid_grant")
	_, err = cfg.Exchange(e.ctx(), code)
	wantRetrieveError(t, err, "invalid_grant")
	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if status, h := e.validate(tok.AccessToken); status != http.StatusOK || h.Get("X-Token-Tenant") != "default" {
		t.Fatalf("/validate %d %v", status, h)
	}
}

func TestAuthorizePKCEMismatchConfidential(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("App", []string{"https://app.example/cb"}, nil, nil, false)
	e.user("", "dave", "pw")
	cfg := e.oauth2Config(app)
	verifier := oauth2.GenerateVerifier()
	code := e.codeFlow(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "dave", "pw", app, "st")
	_, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantRetrieveError(t, err, "invalid_grant")
	_, err = cfg.Exchange(e.ctx(), code) // challenge was sent: verifier required
	wantRetrieveError(t, err, "invalid_grant")
	if _, err = cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizeRequestErrors(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("App", []string{"https://app.example/cb", "https://app.example/other"}, nil, []string{"read"}, false)
	noCode := e.client("Implicit only", []string{"https://spa.example/cb"}, []string{"implicit"}, nil, true)
	b := e.browser()
	base := func(kv ...string) url.Values {
		v := url.Values{"response_type": {"code"}, "client_id": {app.ID}, "redirect_uri": {app.Redirect}, "state": {"st"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}

	t.Run("unknown client", func(t *testing.T) {
		e.authorize(b, base("client_id", "nope")).wantPage(t, http.StatusBadRequest, "Unknown application")
		e.authorize(b, base("client_id", "")).wantPage(t, http.StatusBadRequest, "Unknown application")
	})
	t.Run("redirect mismatch", func(t *testing.T) {
		e.authorize(b, base("redirect_uri", "https://evil.example/cb")).wantPage(t, http.StatusBadRequest, "not registered")
		e.authorize(b, base("redirect_uri", app.Redirect+"/x")).wantPage(t, http.StatusBadRequest, "not registered")
		// Several registered: it may not be omitted.
		e.authorize(b, base("redirect_uri", "")).wantPage(t, http.StatusBadRequest, "redirect_uri")
		// Checked before the response type.
		e.authorize(b, base("redirect_uri", "https://evil.example/cb", "response_type", "bogus")).
			wantPage(t, http.StatusBadRequest, "not registered")
		q := base()
		q.Add("redirect_uri", "https://app.example/other")
		e.authorize(b, q).wantPage(t, http.StatusBadRequest, "more than once")
	})
	t.Run("unsupported response type", func(t *testing.T) {
		e.authorize(b, base("response_type", "id_token")).wantError(t, app.Redirect, false, "unsupported_response_type", "st")
		e.authorize(b, base("response_type", "")).wantError(t, app.Redirect, false, "invalid_request", "st")
	})
	t.Run("unauthorized client", func(t *testing.T) {
		// app has no implicit grant: the error goes in the fragment.
		e.authorize(b, base("response_type", "token")).wantError(t, app.Redirect, true, "unauthorized_client", "st")
		e.authorize(b, url.Values{"response_type": {"code"}, "client_id": {noCode.ID}, "state": {"st"}}).
			wantError(t, noCode.Redirect, false, "unauthorized_client", "st")
	})
	t.Run("invalid scope", func(t *testing.T) {
		e.authorize(b, base("scope", "read admin")).wantError(t, app.Redirect, false, "invalid_scope", "st")
	})
	t.Run("plain PKCE refused", func(t *testing.T) {
		v := strings.Repeat("a", 43)
		e.authorize(b, base("code_challenge", v, "code_challenge_method", "plain")).wantError(t, app.Redirect, false, "invalid_request", "st")
		e.authorize(b, base("code_challenge", v)).wantError(t, app.Redirect, false, "invalid_request", "st")
		e.authorize(b, base("code_challenge_method", "S256")).wantError(t, app.Redirect, false, "invalid_request", "st")
		e.authorize(b, base("code_challenge", "short", "code_challenge_method", "S256")).wantError(t, app.Redirect, false, "invalid_request", "st")
	})
	t.Run("repeated parameter", func(t *testing.T) {
		q := base()
		q.Add("scope", "read")
		q.Add("scope", "read")
		e.authorize(b, q).wantError(t, app.Redirect, false, "invalid_request", "st")
	})
	t.Run("post", func(t *testing.T) {
		// POST /authorize works like GET.
		e.post(b, "/authorize", base()).wantPage(t, http.StatusOK, "Sign in")
		p := e.post(b, "/authorize", base("scope", "nope"))
		if p.status != http.StatusSeeOther {
			t.Fatalf("status %d", p.status)
		}
		p.wantError(t, app.Redirect, false, "invalid_scope", "st")
	})
}

func TestAuthorizeCSRF(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("App", []string{"https://app.example/cb"}, nil, nil, false)
	e.user("", "erin", "pw")
	b := e.browser()
	q := url.Values{"response_type": {"code"}, "client_id": {app.ID}, "state": {"st"}}
	page := e.authorize(b, q)
	action, f := page.form(t)
	f.Set("username", "erin")
	f.Set("password", "pw")

	for name, mutate := range map[string]func(url.Values){
		"missing": func(v url.Values) { v.Del("csrf_token") },
		"wrong":   func(v url.Values) { v.Set("csrf_token", strings.Repeat("A", 43)) },
	} {
		t.Run(name, func(t *testing.T) {
			v := url.Values{}
			for k, vs := range f {
				v[k] = vs
			}
			mutate(v)
			e.post(b, action, v).wantPage(t, http.StatusForbidden, "could not be verified")
		})
	}
	// Right token, but a browser without the session cookie.
	e.post(e.browser(), action, f).wantPage(t, http.StatusForbidden, "could not be verified")
	// Unknown request id.
	v := url.Values{"request_id": {"nope"}, "csrf_token": {f.Get("csrf_token")}}
	e.post(b, action, v).wantPage(t, http.StatusBadRequest, "expired")

	// The real login still works, and the consent form is guarded too.
	page = e.login(b, page, "erin", "pw")
	caction, cf := page.form(t)
	if cf.Get("csrf_token") == f.Get("csrf_token") {
		t.Error("CSRF token not rotated at sign-in")
	}
	cf.Set("consent", "allow")
	wrong := url.Values{"request_id": cf["request_id"], "csrf_token": {f.Get("csrf_token")}, "consent": {"allow"}}
	e.post(b, caction, wrong).wantPage(t, http.StatusForbidden, "could not be verified")
	cf2 := url.Values{"request_id": cf["request_id"], "consent": {"allow"}}
	e.post(b, caction, cf2).wantPage(t, http.StatusForbidden, "could not be verified")
	e.post(b, caction, cf).redirected(t, app.Redirect, false)

	// Consent before login is refused.
	page = e.authorize(b, q)
	_, lf := page.form(t)
	lf.Set("consent", "allow")
	e.post(b, "/authorize/consent", lf).wantPage(t, http.StatusBadRequest, "Sign in")
}

func TestAuthorizeDeny(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("App", []string{"https://app.example/cb"}, nil, nil, false)
	e.user("", "frank", "pw")
	b := e.browser()
	page := e.authorize(b, url.Values{"response_type": {"code"}, "client_id": {app.ID}, "state": {"st"}})
	page = e.login(b, page, "frank", "pw")
	v := e.consent(b, page, "deny").wantError(t, app.Redirect, false, "access_denied", "st")
	if v.Get("code") != "" {
		t.Fatal("code issued on deny")
	}
}

func TestAuthorizeImplicit(t *testing.T) {
	e := newAZEnv(t, nil)
	spa := e.client("SPA", []string{"https://spa.example/cb"}, []string{"implicit"}, []string{"read", "write"}, true)
	e.user("viesgo", "gina", "pw")
	b := e.browser()
	// The guide's implicit call, with an empty tenant_id: the field shows.
	page := e.authorize(b, url.Values{"response_type": {"token"}, "redirect_uri": {spa.Redirect}, "client_id": {spa.ID},
		"tenant_id": {""}, "scope": {"read"}, "state": {"st"}})
	page.wantPage(t, http.StatusOK, `<label for="tenant_id">`)
	page = e.login(b, page, "gina", "pw", "tenant_id", "viesgo")
	v := e.consent(b, page, "allow").redirected(t, spa.Redirect, true)
	if v.Get("token_type") != "bearer" || v.Get("expires_in") != "1800" || v.Get("scope") != "read" ||
		v.Get("state") != "st" || !strings.HasPrefix(v.Get("access_token"), "tkda-") || v.Has("refresh_token") || v.Has("code") {
		t.Fatalf("fragment %v", v)
	}
	status, h := e.validate(v.Get("access_token"))
	if status != http.StatusOK || h.Get("X-Token-Tenant") != "viesgo" || h.Get("X-Token-Subject") != "viesgo/gina" || h.Get("X-Token-Scope") != "read" {
		t.Fatalf("/validate %d %v", status, h)
	}
	// Deny in the implicit flow answers in the fragment.
	page = e.authorize(b, url.Values{"response_type": {"token"}, "client_id": {spa.ID}, "tenant_id": {"viesgo"}, "state": {"s2"}})
	page = e.login(b, page, "gina", "pw")
	e.consent(b, page, "deny").wantError(t, spa.Redirect, true, "access_denied", "s2")
}

func TestAuthorizeWrongPasswordThenSuccess(t *testing.T) {
	e := newAZEnv(t, nil)
	app := e.client("App", []string{"https://app.example/cb"}, nil, nil, false)
	e.user("", "hank", "right")
	b := e.browser()
	page := e.authorize(b, url.Values{"response_type": {"code"}, "client_id": {app.ID}})
	bad := e.login(b, page, "hank", "wrong")
	bad.wantPage(t, http.StatusUnauthorized, "Incorrect username or password")
	if !strings.Contains(bad.body, `value="hank"`) {
		t.Error("username not kept after a failed login")
	}
	e.login(b, page, "", "").wantPage(t, http.StatusBadRequest, "Enter your username and password")
	e.login(b, page, "nobody", "right").wantPage(t, http.StatusUnauthorized, "Incorrect username or password")
	good := e.login(b, bad, "hank", "right")
	good.wantPage(t, http.StatusOK, "wants to access your account")
	e.consent(b, good, "allow").redirected(t, app.Redirect, false)
}

func TestAuthorizeLoginLimiter(t *testing.T) {
	clock := &azClock{t: time.Now()} // frozen: the lockout cannot lapse mid-test
	e := newAZEnv(t, clock.Now)
	app := e.client("App", []string{"https://app.example/cb"}, nil, nil, false)
	e.user("", "ivan", "right")
	b := e.browser()
	page := e.authorize(b, url.Values{"response_type": {"code"}, "client_id": {app.ID}})
	var last azPage
	for i := 0; i < 10; i++ {
		last = e.login(b, page, "ivan", "wrong")
		if last.status == http.StatusTooManyRequests {
			break
		}
		last.wantPage(t, http.StatusUnauthorized, "Incorrect")
	}
	last.wantPage(t, http.StatusTooManyRequests, "Too many failed sign-in attempts")
	if last.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Even the right password waits; the form is still there.
	e.login(b, page, "ivan", "right").wantPage(t, http.StatusTooManyRequests, "Too many")
	// The lockout lapses.
	clock.Add(6 * time.Minute)
	e.login(b, page, "ivan", "right").wantPage(t, http.StatusOK, "wants to access your account")
}

func TestAuthorizeCodeExpires(t *testing.T) {
	clock := &azClock{t: time.Now()}
	e := newAZEnv(t, clock.Now)
	app := e.client("App", []string{"https://app.example/cb"}, nil, nil, false)
	e.user("", "judy", "pw")
	cfg := e.oauth2Config(app)
	code := e.codeFlow(cfg.AuthCodeURL("st"), "judy", "pw", app, "st")
	clock.Add(61 * time.Second)
	_, err := cfg.Exchange(e.ctx(), code)
	wantRetrieveError(t, err, "invalid_grant")

	// Login sessions expire too.
	b := e.browser()
	page := e.authorize(b, url.Values{"response_type": {"code"}, "client_id": {app.ID}})
	clock.Add(11 * time.Minute)
	e.login(b, page, "judy", "pw").wantPage(t, http.StatusBadRequest, "expired")
}

func TestStaticStylesheet(t *testing.T) {
	e := newAZEnv(t, nil)
	b := e.browser()
	p := e.get(b, "/static/tokend.css")
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/css") || !strings.Contains(p.body, ".card") {
		t.Fatalf("stylesheet: %d %q", p.status, p.header.Get("Content-Type"))
	}
	for _, name := range []string{"login.html", "nope.css", "..%2Ftokend.css"} {
		if p := e.get(b, "/static/"+name); p.status == http.StatusOK {
			t.Errorf("/static/%s: %d", name, p.status)
		}
	}
}

func TestAuthorizeSecureCookie(t *testing.T) {
	e := newAZEnv(t, nil, func(c *httpapi.Config) { c.SecureCookies = true })
	app := e.client("App", []string{"https://app.example/cb"}, nil, nil, false)
	p := e.authorize(e.browser(), url.Values{"response_type": {"code"}, "client_id": {app.ID}})
	if c := p.header.Get("Set-Cookie"); !strings.Contains(c, "; Secure") || !strings.Contains(c, "HttpOnly") {
		t.Fatalf("Set-Cookie %q", c)
	}
}
