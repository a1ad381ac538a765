package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// secrets collects every raw token and secret a test saw, so /metrics and
// the data dir can be checked for leaks.
type secrets struct{ list []string }

func (s *secrets) add(v ...string) {
	for _, x := range v {
		if x != "" {
			s.list = append(s.list, x)
		}
	}
}

// TestEndpoints drives every endpoint and grant of a single real node.
// The subtests share one node and run in order: later ones count on what
// earlier ones issued (token_issued_counter values, the list of clients),
// and the last checks every secret the others saw against /metrics.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	f := newEndpointsFixture(t)
	for _, st := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"client_credentials both auth styles and paths", f.clientCredentials},
		{"token response shape", f.tokenResponseShape},
		{"password grant via oauth2 and issue counter", f.passwordGrantAndCounter},
		{"validate", f.validate},
		{"introspect", f.introspect},
		{"revoke", f.revoke},
		{"basic credentials percent-decoded", f.basicPercentDecoded},
		{"refresh grace window", f.refreshGrace},
		{"metadata", f.metadata},
		{"admin clients", f.adminClients},
		{"admin users and bulk revoke", f.adminUsersAndBulkRevoke},
		{"admin auth", f.adminAuth},
		{"ops", f.ops},
		// Last: every secret seen so far must stay out of /metrics.
		{"metrics", f.metricsHoldNoSecret},
	} {
		t.Run(st.name, st.run)
	}
}

// endpointsFixture is what TestEndpoints' subtests share: one node, two
// clients, two users and the secrets seen so far.
type endpointsFixture struct {
	n    *node
	skew *atomic.Int64 // added to the node's HTTP clock
	ctx  context.Context
	svc  client // a resource server: it introspects the other clients' tokens
	web  client // password and refresh_token grants
	seen *secrets
}

func newEndpointsFixture(t *testing.T) *endpointsFixture {
	t.Helper()
	skew := new(atomic.Int64)
	n := startNode(t, t.TempDir(), nodeOpts{RefreshGrace: 2 * time.Second, Skew: skew})
	seen := &secrets{}
	seen.add(n.Admin)

	svc := n.createClient(t, map[string]any{"name": "svc", "introspect": true, "grant_types": []string{"client_credentials"}, "scopes": []string{"read", "write"}})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}, "scopes": []string{"read", "write", "admin"}})
	seen.add(svc.Secret, web.Secret)
	n.createUser(t, "", "alice", "alice-pw-1")
	n.createUser(t, "acme", "bob", "bob-pw-1")
	return &endpointsFixture{n: n, skew: skew, ctx: context.Background(), svc: svc, web: web, seen: seen}
}

// clientCredentials checks the client_credentials grant with both auth
// styles on both token paths, and its default scope.
func (f *endpointsFixture) clientCredentials(t *testing.T) {
	n, svc, seen, ctx := f.n, f.svc, f.seen, f.ctx
	var prevCounter int64
	for i, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		for _, path := range []string{"/oauth/token", "/token"} {
			cc := clientcredentials.Config{ClientID: svc.ID, ClientSecret: svc.Secret, TokenURL: n.URL + path,
				Scopes: []string{"read"}, AuthStyle: style}
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatalf("style %d %s: %v", i, path, err)
			}
			seen.add(tok.AccessToken)
			if tok.RefreshToken != "" {
				t.Errorf("client_credentials returned a refresh token")
			}
			if tok.TokenType != "bearer" && tok.TokenType != "Bearer" {
				t.Errorf("token_type %q", tok.TokenType)
			}
			if !strings.HasPrefix(tok.AccessToken, "tkda-") || len(tok.AccessToken) < 43 {
				t.Errorf("access token shape %q", tok.AccessToken)
			}
			if got := tok.Extra("scope"); got != "read" {
				t.Errorf("scope %v", got)
			}
			c, ok := tok.Extra("token_issued_counter").(float64)
			if !ok || int64(c) != prevCounter+1 {
				t.Errorf("token_issued_counter %v after %d", tok.Extra("token_issued_counter"), prevCounter)
			}
			prevCounter = int64(c)
			if r := n.validate(t, tok.AccessToken, "read"); r.Status != 200 || r.Header.Get("X-Token-Subject") != svc.ID {
				t.Errorf("validate cc token: %d subject %q", r.Status, r.Header.Get("X-Token-Subject"))
			}
			// Wrong secret with the same style.
			bad := cc
			bad.ClientSecret = svc.Secret + "x"
			_, err = bad.Token(ctx)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
				t.Fatalf("wrong secret style %d: %v", i, err)
			}
			if wa := re.Response.Header.Get("WWW-Authenticate"); (style == oauth2.AuthStyleInHeader) != strings.HasPrefix(wa, "Basic") {
				t.Errorf("style %d: WWW-Authenticate %q", i, wa)
			}
		}
	}
	// Default scope is every registered scope.
	tr := n.clientCreds(t, svc)
	seen.add(tr.AccessToken)
	if tr.Scope != "read write" || tr.RefreshToken != "" || tr.ExpiresIn == nil || *tr.ExpiresIn != int64((30*time.Minute)/time.Second) {
		t.Errorf("default cc response %+v", tr)
	}
}

// tokenResponseShape checks the token endpoint's headers and JSON types.
func (f *endpointsFixture) tokenResponseShape(t *testing.T) {
	n, web, seen := f.n, f.web, f.seen
	v := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw-1"}, "scope": {"read"}}
	r := n.postForm(t, "/token", v, []string{web.ID, web.Secret})
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	seen.add(str(m["access_token"]), str(m["refresh_token"]))
	for _, k := range []string{"expires_in", "token_issued_counter"} {
		num, ok := m[k].(json.Number)
		if _, err := num.Int64(); !ok || err != nil {
			t.Errorf("%s is not a JSON integer: %v", k, m[k])
		}
	}
	if !strings.HasPrefix(str(m["refresh_token"]), "tkdr-") || str(m["access_token"]) == str(m["refresh_token"]) {
		t.Errorf("refresh token %q", m["refresh_token"])
	}
	ts, err := time.Parse(time.RFC3339, str(m["last_token_issued_date"]))
	if err != nil || time.Since(ts).Abs() > time.Minute || !strings.HasSuffix(str(m["last_token_issued_date"]), "Z") {
		t.Errorf("last_token_issued_date %q: %v", m["last_token_issued_date"], err)
	}
	if m["scope"] != "read" || m["token_type"] != "bearer" {
		t.Errorf("body %s", r.Body)
	}
}

// passwordGrantAndCounter checks the password grant through
// golang.org/x/oauth2 and the per-subject token_issued_counter.
func (f *endpointsFixture) passwordGrantAndCounter(t *testing.T) {
	n, web, seen, ctx := f.n, f.web, f.seen, f.ctx
	n.createUser(t, "", "carol", "carol-pw")
	conf := oauth2.Config{ClientID: web.ID, ClientSecret: web.Secret, Scopes: []string{"read", "write"},
		Endpoint: oauth2.Endpoint{TokenURL: n.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	for want := 1; want <= 3; want++ {
		tok, err := conf.PasswordCredentialsToken(ctx, "carol", "carol-pw")
		if err != nil {
			t.Fatal(err)
		}
		seen.add(tok.AccessToken, tok.RefreshToken)
		if c, _ := tok.Extra("token_issued_counter").(float64); int(c) != want {
			t.Errorf("carol's token_issued_counter %v, want %d", tok.Extra("token_issued_counter"), want)
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(tok.Extra("last_token_issued_date"))); err != nil {
			t.Errorf("last_token_issued_date: %v", err)
		}
		if tok.RefreshToken == "" || tok.Extra("scope") != "read write" {
			t.Errorf("password token %+v scope %v", tok, tok.Extra("scope"))
		}
		r := n.validate(t, tok.AccessToken, "")
		if r.Status != 200 || r.Header.Get("X-Token-Subject") != "default/carol" || r.Header.Get("X-Token-Tenant") != "default" {
			t.Errorf("validate: %d %v", r.Status, r.Header)
		}
	}
	// Body auth style too.
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	tok, err := conf.PasswordCredentialsToken(ctx, "carol", "carol-pw")
	if err != nil {
		t.Fatal(err)
	}
	seen.add(tok.AccessToken, tok.RefreshToken)
	if c, _ := tok.Extra("token_issued_counter").(float64); int(c) != 4 {
		t.Errorf("counter %v, want 4", tok.Extra("token_issued_counter"))
	}
	// A different subject has its own counter.
	tr := n.passwordGrant(t, web, "acme", "bob", "bob-pw-1")
	seen.add(tr.AccessToken, tr.RefreshToken)
	if tr.Counter == nil || *tr.Counter != 1 {
		t.Errorf("bob's counter %v", tr.Counter)
	}
	// A refresh counts as an issue for the subject.
	tr2 := n.issue(t, web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
	seen.add(tr2.AccessToken, tr2.RefreshToken)
	if tr2.Counter == nil || *tr2.Counter != 2 {
		t.Errorf("bob's counter after refresh %v", tr2.Counter)
	}
	// Wrong password.
	_, err = conf.PasswordCredentialsToken(ctx, "carol", "nope")
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.Response.StatusCode != 400 {
		t.Errorf("wrong password: %v", err)
	}
}

// validate checks /validate's headers, scope checks and refusals.
func (f *endpointsFixture) validate(t *testing.T) {
	n, web, seen := f.n, f.web, f.seen
	tr := n.passwordGrant(t, web, "acme", "bob", "bob-pw-1")
	seen.add(tr.AccessToken, tr.RefreshToken)
	before := time.Now()
	r := n.validate(t, tr.AccessToken, "")
	if r.Status != 200 {
		t.Fatalf("validate: %d", r.Status)
	}
	want := map[string]string{
		"X-Token-Subject": "acme/bob", "X-Token-Client-Id": web.ID,
		"X-Token-Scope": "read write admin", "X-Token-Tenant": "acme",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	exp, err := strconv.ParseInt(r.Header.Get("X-Token-Expires-At"), 10, 64)
	if d := time.Unix(exp, 0).Sub(before); err != nil || d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("X-Token-Expires-At %q (%v from now)", r.Header.Get("X-Token-Expires-At"), d)
	}
	if r := n.validate(t, tr.AccessToken, "read admin"); r.Status != 200 {
		t.Errorf("scope subset: %d", r.Status)
	}
	r = n.validate(t, tr.AccessToken, "read delete")
	if r.Status != 403 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) ||
		!strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("insufficient scope: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	for name, tok := range map[string]string{"unknown": "tkda-" + strings.Repeat("A", 43), "refresh token": tr.RefreshToken} {
		r = n.validate(t, tok, "")
		if wa := r.Header.Get("WWW-Authenticate"); r.Status != 401 || !strings.HasPrefix(wa, "Bearer") || !strings.Contains(wa, `error="invalid_token"`) {
			t.Errorf("%s: %d %q", name, r.Status, wa)
		}
	}
	r = n.get(t, "/validate")
	if r.Status != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
}

// introspect checks both introspection paths for access and refresh tokens,
// inactive tokens and client_credentials tokens.
func (f *endpointsFixture) introspect(t *testing.T) {
	n, svc, web, seen := f.n, f.svc, f.web, f.seen
	tr := n.passwordGrant(t, web, "acme", "bob", "bob-pw-1")
	seen.add(tr.AccessToken, tr.RefreshToken)
	for _, path := range []string{"/introspect", "/oauth/introspect"} {
		for kind, tok := range map[string]string{"access_token": tr.AccessToken, "refresh_token": tr.RefreshToken} {
			// The caller may be another confidential client registered as a
			// resource server (TestIntrospectionRestricted covers the others).
			r := n.postForm(t, path, url.Values{"token": {tok}}, []string{svc.ID, svc.Secret})
			if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%s: %d %s %v", path, r.Status, r.Body, r.Header)
			}
			dec := json.NewDecoder(bytes.NewReader(r.Body))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"active": true, "scope": "read write admin", "client_id": web.ID, "username": "bob",
				"sub": "acme/bob", "tenant_id": "acme", "token_type": kind, "iss": n.URL}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s %s: %s = %v, want %v", path, kind, k, m[k], v)
				}
			}
			exp, err1 := m["exp"].(json.Number).Int64()
			iat, err2 := m["iat"].(json.Number).Int64()
			if err1 != nil || err2 != nil || iat > time.Now().Unix()+1 || iat < time.Now().Unix()-60 || exp <= iat {
				t.Errorf("exp %v iat %v", m["exp"], m["iat"])
			}
			if kind == "access_token" && exp-iat != int64((30*time.Minute)/time.Second) {
				t.Errorf("access exp-iat = %d", exp-iat)
			}
			if kind == "refresh_token" && exp-iat != int64((12*time.Hour)/time.Second) {
				t.Errorf("refresh exp-iat = %d", exp-iat)
			}
		}
	}
	// Inactive is exactly {"active":false}.
	r := n.postForm(t, "/introspect", url.Values{"token": {"tkda-nonexistent"}, "client_id": {svc.ID}, "client_secret": {svc.Secret}}, nil)
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"active":false}` {
		t.Errorf("inactive: %d %s", r.Status, r.Body)
	}
	// cc token has no username/tenant.
	cc := n.clientCreds(t, svc)
	seen.add(cc.AccessToken)
	m := n.introspect(t, svc, cc.AccessToken)
	if m["active"] != true || m["sub"] != svc.ID || m["client_id"] != svc.ID || m["username"] != nil {
		t.Errorf("cc introspection %v", m)
	}
}

// revoke checks that revoking either token of a grant ends the grant, and
// the cases that change nothing.
func (f *endpointsFixture) revoke(t *testing.T) {
	n, svc, web, seen := f.n, f.svc, f.web, f.seen
	// Unknown token: 200, empty body, both paths, both auth methods.
	for _, path := range []string{"/revoke", "/oauth/revoke"} {
		r := n.postForm(t, path, url.Values{"token": {"tkdr-unknown"}}, []string{web.ID, web.Secret})
		if r.Status != 200 || len(r.Body) != 0 {
			t.Errorf("%s unknown: %d %q", path, r.Status, r.Body)
		}
	}
	// Access token revocation kills the refresh token.
	a := n.passwordGrant(t, web, "", "alice", "alice-pw-1")
	seen.add(a.AccessToken, a.RefreshToken)
	n.revoke(t, web, a.AccessToken)
	if n.valid(t, a.AccessToken) || n.active(t, svc, a.RefreshToken) {
		t.Error("revoking the access token left the grant alive")
	}
	if r := n.postForm(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken},
		"client_id": {web.ID}, "client_secret": {web.Secret}}, nil); r.Status != 400 || r.errCode(t) != "invalid_grant" {
		t.Errorf("refresh after revoke: %d %s", r.Status, r.Body)
	}
	// Refresh token revocation (with a hint, via /oauth/revoke) kills the access token.
	b := n.passwordGrant(t, web, "", "alice", "alice-pw-1")
	seen.add(b.AccessToken, b.RefreshToken)
	r := n.postForm(t, "/oauth/revoke", url.Values{"token": {b.RefreshToken}, "token_type_hint": {"refresh_token"}}, []string{web.ID, web.Secret})
	if r.Status != 200 || len(r.Body) != 0 {
		t.Fatalf("revoke refresh: %d %q", r.Status, r.Body)
	}
	if n.valid(t, b.AccessToken) || n.active(t, svc, b.RefreshToken) || n.active(t, svc, b.AccessToken) {
		t.Error("revoking the refresh token left the grant alive")
	}
	// Another client's token: 200, nothing changes.
	c := n.passwordGrant(t, web, "", "alice", "alice-pw-1")
	seen.add(c.AccessToken, c.RefreshToken)
	n.revoke(t, svc, c.AccessToken)
	n.revoke(t, svc, c.RefreshToken)
	if !n.valid(t, c.AccessToken) || !n.active(t, svc, c.RefreshToken) {
		t.Error("another client revoked web's grant")
	}
	// Revoking again is still 200.
	n.revoke(t, web, c.AccessToken)
	n.revoke(t, web, c.AccessToken)
	if n.valid(t, c.AccessToken) {
		t.Error("still valid")
	}
}

// basicPercentDecoded checks that HTTP Basic client credentials are percent-
// decoded before they are compared.
func (f *endpointsFixture) basicPercentDecoded(t *testing.T) {
	n, svc, seen := f.n, f.svc, f.seen
	enc := func(s string, lower bool) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			h := fmt.Sprintf("%%%02X", s[i])
			if lower {
				h = strings.ToLower(h)
			}
			b.WriteString(h)
		}
		return b.String()
	}
	for _, lower := range []bool{false, true} {
		for _, basic := range [][]string{
			{url.QueryEscape(svc.ID), url.QueryEscape(svc.Secret)},
			{enc(svc.ID, lower), enc(svc.Secret, lower)},
			{svc.ID, strings.ReplaceAll(strings.ReplaceAll(svc.Secret, "~", "%7E"), "-", "%2D")},
		} {
			r := n.postForm(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, basic)
			if r.Status != 200 {
				t.Fatalf("basic %q: %d %s", basic, r.Status, r.Body)
			}
			seen.add(str(r.json(t)["access_token"]))
		}
	}
	// A secret that only matches before decoding does not authenticate.
	r := n.postForm(t, "/token", url.Values{"grant_type": {"client_credentials"}}, []string{svc.ID, enc(svc.Secret+"x", false)})
	if r.Status != 401 || r.errCode(t) != "invalid_client" {
		t.Errorf("encoded wrong secret: %d %s", r.Status, r.Body)
	}
}

// refreshGrace checks refresh rotation, the grace retry and reuse outside
// the grace window.
func (f *endpointsFixture) refreshGrace(t *testing.T) {
	n, svc, web, seen, skew := f.n, f.svc, f.web, f.seen, f.skew
	refresh := func(rt string) reply {
		return n.postForm(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, []string{web.ID, web.Secret})
	}
	ok := func(r reply) tokenResp {
		t.Helper()
		if r.Status != 200 {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
		var tr tokenResp
		json.Unmarshal(r.Body, &tr)
		seen.add(tr.AccessToken, tr.RefreshToken)
		return tr
	}
	t1 := n.passwordGrant(t, web, "", "alice", "alice-pw-1")
	seen.add(t1.AccessToken, t1.RefreshToken)
	t2 := ok(refresh(t1.RefreshToken))
	if t2.RefreshToken == t1.RefreshToken || t2.RefreshToken == "" {
		t.Fatal("refresh token not rotated")
	}
	// Retry of the rotated token within grace (a lost response): a
	// fresh pair, the unused successor (t2) superseded, the grant alive.
	t3 := ok(refresh(t1.RefreshToken))
	if t3.AccessToken == t2.AccessToken || t3.RefreshToken == t2.RefreshToken {
		t.Fatal("grace retry returned the same pair")
	}
	if n.valid(t, t2.AccessToken) || n.active(t, svc, t2.RefreshToken) {
		t.Error("unused successor still valid after a grace retry")
	}
	if !n.valid(t, t3.AccessToken) {
		t.Fatal("grant died on a grace retry")
	}
	// Use t3 normally, then present t3's refresh again after the
	// grace window: reuse, the whole grant is revoked.
	t4 := ok(refresh(t3.RefreshToken))
	skew.Add(int64(3 * time.Second))
	defer skew.Store(0)
	if r := refresh(t3.RefreshToken); r.Status != 400 || r.errCode(t) != "invalid_grant" {
		t.Fatalf("reuse outside grace: %d %s", r.Status, r.Body)
	}
	if n.valid(t, t4.AccessToken) || n.active(t, svc, t4.RefreshToken) {
		t.Error("reuse outside the grace window left the grant alive")
	}
	// The successor a grace retry superseded is reuse as well: had the
	// retry been a thief's, the client coming back with it must end
	// the grant (TestRefreshGraceReplayByThiefRevokesGrant).
	u1 := n.passwordGrant(t, web, "", "alice", "alice-pw-1")
	seen.add(u1.AccessToken, u1.RefreshToken)
	u2 := ok(refresh(u1.RefreshToken))
	u3 := ok(refresh(u1.RefreshToken))
	if r := refresh(u2.RefreshToken); r.Status != 400 || r.errCode(t) != "invalid_grant" {
		t.Errorf("superseded successor refresh: %d %s", r.Status, r.Body)
	}
	if n.valid(t, u3.AccessToken) || n.active(t, svc, u3.RefreshToken) {
		t.Error("presenting a superseded successor left the grant alive")
	}
}

// metadata checks the authorization server metadata document.
func (f *endpointsFixture) metadata(t *testing.T) {
	n := f.n
	r := n.get(t, "/.well-known/oauth-authorization-server")
	if r.Status != 200 {
		t.Fatal(r.Status)
	}
	m := r.json(t)
	for k, v := range map[string]string{"issuer": n.URL, "token_endpoint": n.URL + "/token",
		"revocation_endpoint": n.URL + "/revoke", "introspection_endpoint": n.URL + "/introspect",
		"authorization_endpoint": n.URL + "/authorize"} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	has := func(k string, want ...string) {
		list, _ := m[k].([]any)
		for _, w := range want {
			found := false
			for _, x := range list {
				found = found || x == w
			}
			if !found {
				t.Errorf("%s %v lacks %q", k, list, w)
			}
		}
	}
	has("grant_types_supported", "authorization_code", "password", "client_credentials", "refresh_token")
	has("token_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post")
	has("code_challenge_methods_supported", "S256")
	has("response_types_supported", "code")
}

// adminClients checks the client lifecycle through the admin API: create,
// list, get, update, rotate, delete.
func (f *endpointsFixture) adminClients(t *testing.T) {
	n, svc, web, seen := f.n, f.svc, f.web, f.seen
	r := n.admin(t, "POST", "/admin/clients", map[string]any{"name": "app", "grant_types": []string{"client_credentials"}, "scopes": []string{"read"}})
	if r.Status != 201 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	app := client{ID: str(m["client_id"]), Secret: str(m["client_secret"])}
	seen.add(app.Secret)
	if app.ID == "" || !strings.HasPrefix(app.Secret, "tkds-") || m["name"] != "app" || m["public"] != false {
		t.Fatalf("create body %s", r.Body)
	}
	// List and get never show secrets.
	r = n.admin(t, "GET", "/admin/clients", nil)
	if r.Status != 200 || bytes.Contains(r.Body, []byte("client_secret")) || bytes.Contains(r.Body, []byte(app.Secret)) {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	var list []map[string]any
	json.Unmarshal(r.Body, &list)
	var ids []string
	for _, c := range list {
		ids = append(ids, str(c["client_id"]))
	}
	sort.Strings(ids)
	want := []string{svc.ID, web.ID, app.ID}
	sort.Strings(want)
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("listed %v, want %v", ids, want)
	}
	r = n.admin(t, "GET", "/admin/clients/"+app.ID, nil)
	if r.Status != 200 || bytes.Contains(r.Body, []byte("client_secret")) || r.json(t)["client_id"] != app.ID {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	cc := n.clientCreds(t, app)
	seen.add(cc.AccessToken)
	if cc.Scope != "read" {
		t.Errorf("scope %q", cc.Scope)
	}
	// Update: new name and scopes; the secret keeps working.
	r = n.admin(t, "PUT", "/admin/clients/"+app.ID, map[string]any{"name": "app2", "grant_types": []string{"client_credentials"}, "scopes": []string{"read", "write"}})
	if r.Status != 200 || r.json(t)["name"] != "app2" || bytes.Contains(r.Body, []byte("client_secret")) {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	if g := n.admin(t, "GET", "/admin/clients/"+app.ID, nil).json(t); g["name"] != "app2" || fmt.Sprint(g["scopes"]) != "[read write]" {
		t.Errorf("after update: %v", g)
	}
	if tr := n.clientCreds(t, app); tr.Scope != "read write" {
		t.Errorf("scope after update %q", tr.Scope)
	} else {
		seen.add(tr.AccessToken)
	}
	// Rotate: the new secret works, the old one no longer does.
	r = n.admin(t, "POST", "/admin/clients/"+app.ID+"/secret", nil)
	newSecret := str(r.json(t)["client_secret"])
	seen.add(newSecret)
	if r.Status != 200 || newSecret == "" || newSecret == app.Secret {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	r = n.postForm(t, "/token", url.Values{"grant_type": {"client_credentials"}}, []string{app.ID, app.Secret})
	if r.Status != 401 || r.errCode(t) != "invalid_client" {
		t.Errorf("old secret after rotation: %d %s", r.Status, r.Body)
	}
	app.Secret = newSecret
	tr := n.clientCreds(t, app)
	seen.add(tr.AccessToken)
	if !n.valid(t, cc.AccessToken) {
		t.Error("secret rotation revoked existing tokens")
	}
	// Delete: gone, its tokens revoked, its credentials dead.
	r = n.admin(t, "DELETE", "/admin/clients/"+app.ID, nil)
	if r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if n.valid(t, tr.AccessToken) || n.valid(t, cc.AccessToken) {
		t.Error("deleted client's tokens still valid")
	}
	if r := n.admin(t, "GET", "/admin/clients/"+app.ID, nil); r.Status != 404 || r.errCode(t) != "not_found" {
		t.Errorf("get deleted: %d %s", r.Status, r.Body)
	}
	r = n.postForm(t, "/token", url.Values{"grant_type": {"client_credentials"}}, []string{app.ID, app.Secret})
	if r.Status != 401 || r.errCode(t) != "invalid_client" {
		t.Errorf("deleted client auth: %d %s", r.Status, r.Body)
	}
}

// adminUsersAndBulkRevoke checks the user lifecycle through the admin API
// and bulk revoke by user and by client.
func (f *endpointsFixture) adminUsersAndBulkRevoke(t *testing.T) {
	n, svc, web, seen := f.n, f.svc, f.web, f.seen
	n.createUser(t, "t2", "dave", "dave-pw")
	if r := n.admin(t, "POST", "/admin/users", map[string]any{"tenant": "t2", "username": "dave", "password": "x"}); r.Status != 409 {
		t.Errorf("duplicate user: %d %s", r.Status, r.Body)
	}
	r := n.admin(t, "GET", "/admin/users", nil)
	if r.Status != 200 || bytes.Contains(r.Body, []byte("dave-pw")) || !bytes.Contains(r.Body, []byte(`"dave"`)) {
		t.Errorf("list users: %d %s", r.Status, r.Body)
	}
	d1 := n.passwordGrant(t, web, "t2", "dave", "dave-pw")
	seen.add(d1.AccessToken, d1.RefreshToken)
	// Set password: the new one works, the old one does not.
	if r := n.admin(t, "PUT", "/admin/users/t2/dave", map[string]any{"password": "dave-pw-2"}); r.Status != 200 {
		t.Fatalf("set password: %d %s", r.Status, r.Body)
	}
	r = n.postForm(t, "/token", url.Values{"grant_type": {"password"}, "username": {"dave"}, "password": {"dave-pw"}, "tenant_id": {"t2"}}, []string{web.ID, web.Secret})
	if r.Status != 400 || r.errCode(t) != "invalid_grant" {
		t.Errorf("old password: %d %s", r.Status, r.Body)
	}
	d2 := n.passwordGrant(t, web, "t2", "dave", "dave-pw-2")
	seen.add(d2.AccessToken, d2.RefreshToken)
	// Bulk revoke by tenant/username: every grant of dave, nobody else's.
	a := n.passwordGrant(t, web, "", "alice", "alice-pw-1")
	seen.add(a.AccessToken, a.RefreshToken)
	r = n.admin(t, "POST", "/admin/revoke", map[string]any{"tenant": "t2", "username": "dave"})
	if r.Status != 200 || fmt.Sprint(r.json(t)["revoked_grants"]) != "2" {
		t.Errorf("revoke user: %d %s", r.Status, r.Body)
	}
	if n.valid(t, d1.AccessToken) || n.valid(t, d2.AccessToken) || n.active(t, svc, d2.RefreshToken) {
		t.Error("dave's grants survived bulk revoke")
	}
	if !n.valid(t, a.AccessToken) {
		t.Error("bulk revoke of dave revoked alice")
	}
	// Delete user: tokens revoked and no more logins.
	d3 := n.passwordGrant(t, web, "t2", "dave", "dave-pw-2")
	seen.add(d3.AccessToken, d3.RefreshToken)
	if r := n.admin(t, "DELETE", "/admin/users/t2/dave", nil); r.Status != 200 {
		t.Fatalf("delete user: %d %s", r.Status, r.Body)
	}
	if n.valid(t, d3.AccessToken) {
		t.Error("deleted user's token valid")
	}
	r = n.postForm(t, "/token", url.Values{"grant_type": {"password"}, "username": {"dave"}, "password": {"dave-pw-2"}, "tenant_id": {"t2"}}, []string{web.ID, web.Secret})
	if r.Status != 400 || r.errCode(t) != "invalid_grant" {
		t.Errorf("deleted user login: %d %s", r.Status, r.Body)
	}
	if r := n.admin(t, "DELETE", "/admin/users/t2/dave", nil); r.Status != 404 {
		t.Errorf("delete again: %d", r.Status)
	}
	// Bulk revoke by client.
	c1, c2 := n.clientCreds(t, svc), n.clientCreds(t, svc)
	seen.add(c1.AccessToken, c2.AccessToken)
	r = n.admin(t, "POST", "/admin/revoke", map[string]any{"client_id": svc.ID})
	if r.Status != 200 {
		t.Fatalf("revoke client: %d %s", r.Status, r.Body)
	}
	if n.valid(t, c1.AccessToken) || n.valid(t, c2.AccessToken) {
		t.Error("client grants survived bulk revoke")
	}
	if !n.valid(t, a.AccessToken) {
		t.Error("bulk revoke of svc revoked web's grant")
	}
	// The client itself still works.
	seen.add(n.clientCreds(t, svc).AccessToken)
}

// adminAuth checks that the admin API refuses requests without the admin
// bearer token.
func (f *endpointsFixture) adminAuth(t *testing.T) {
	n := f.n
	for name, hdr := range map[string]string{"none": "", "wrong": "Bearer " + n.Admin + "x", "basic": "Basic " + n.Admin} {
		for _, p := range []string{"/admin/clients", "/admin/users"} {
			req := newReq(t, "GET", n.URL+p, "", nil)
			if hdr != "" {
				req.Header.Set("Authorization", hdr)
			}
			r := do(t, req)
			if r.Status != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") || r.errCode(t) == "" {
				t.Errorf("%s %s: %d %s", name, p, r.Status, r.Body)
			}
		}
	}
	req := newReq(t, "POST", n.URL+"/admin/clients", "application/json", strings.NewReader(`{"name":"sneaky"}`))
	if r := do(t, req); r.Status != 401 {
		t.Errorf("create without token: %d", r.Status)
	}
}

// ops checks /healthz, /readyz and /cluster/status.
func (f *endpointsFixture) ops(t *testing.T) {
	n := f.n
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := n.get(t, p); r.Status != 200 {
			t.Errorf("%s: %d", p, r.Status)
		}
	}
	// /cluster/status names members and their addresses: admin token.
	if r := n.get(t, "/cluster/status"); r.Status != 401 {
		t.Errorf("/cluster/status without the admin token: %d", r.Status)
	}
	r := n.admin(t, "GET", "/cluster/status", nil)
	if r.Status != 200 {
		t.Fatal(r.Status)
	}
	var st struct {
		NodeID         *string `json:"node_id"`
		State          string  `json:"state"`
		Term           *uint64 `json:"term"`
		LeaderID       string  `json:"leader_id"`
		LeaderHTTPAddr string  `json:"leader_http_addr"`
		CommitIndex    *uint64 `json:"commit_index"`
		AppliedIndex   *uint64 `json:"applied_index"`
		Members        []map[string]any
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(n.URL, "http://")
	if st.NodeID == nil || *st.NodeID != "n1" || st.State != "Leader" || st.Term == nil || *st.Term == 0 ||
		st.LeaderID != "n1" || !strings.Contains(st.LeaderHTTPAddr, host) || st.CommitIndex == nil || st.AppliedIndex == nil ||
		*st.AppliedIndex == 0 || len(st.Members) != 1 {
		t.Fatalf("status %s", r.Body)
	}
	mem := st.Members[0]
	for _, k := range []string{"node_id", "raft_addr", "http_addr", "suffrage", "status"} {
		if _, ok := mem[k]; !ok {
			t.Errorf("member lacks %s: %v", k, mem)
		}
	}
	if mem["suffrage"] != "Voter" || mem["raft_addr"] != n.Opts.RaftAddr || mem["node_id"] != "n1" {
		t.Errorf("member %v", mem)
	}
}

// metricsHoldNoSecret checks /metrics, and that no secret seen by the
// earlier subtests appears in it. It must run last.
func (f *endpointsFixture) metricsHoldNoSecret(t *testing.T) {
	n, seen := f.n, f.seen
	r := n.get(t, "/metrics")
	if r.Status != 200 {
		t.Fatal(r.Status)
	}
	body := string(r.Body)
	for _, w := range []string{"tokend_http_requests_total", `route="/token"`, `route="/oauth/token"`, "tokend_live_tokens"} {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if len(seen.list) < 50 {
		t.Fatalf("only %d secrets collected", len(seen.list))
	}
	for _, s := range seen.list {
		if strings.Contains(body, s) {
			t.Errorf("/metrics contains secret %q", s)
		}
	}
	for _, s := range []string{"alice-pw-1", "bob-pw-1", "tkda-", "tkdr-", "tkds-"} {
		if strings.Contains(body, s) {
			t.Errorf("/metrics contains %q", s)
		}
	}
}
