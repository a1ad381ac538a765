package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OpenID Connect against a three-node cluster, with go-oidc as the
// relying party knowing only the issuer URL, the client id and the
// secret. The browser (a cookie jar: cookies ignore ports, so it is one
// browser for all three nodes, as behind a load balancer) opens /authorize
// on one node and posts the forms to others; codes are redeemed on yet
// another, so the nonce, auth_time, the sign-in session, the consent and
// the signing keys all have to travel through Raft.

// oidcRP is the relying party of the test.
type oidcRP struct {
	t        *testing.T
	provider *oidc.Provider
	cfg      oauth2.Config
	browser  *http.Client
}

// send runs one browser request and returns the response and its body.
func (rp *oidcRP) send(req *http.Request) (*http.Response, string) {
	rp.t.Helper()
	resp, err := rp.browser.Do(req)
	if err != nil {
		rp.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// authorize opens the RP's authorization URL on node p (the same path
// and query, another node) and returns the answer.
func (rp *oidcRP) authorize(p *proc, nonce string, extra ...oauth2.AuthCodeOption) (*http.Response, string) {
	u, _ := url.Parse(rp.cfg.AuthCodeURL("st-"+nonce, append(extra, oidc.Nonce(nonce))...))
	req, _ := http.NewRequest(http.MethodGet, p.url()+u.RequestURI(), nil)
	return rp.send(req)
}

func (rp *oidcRP) post(p *proc, path string, f url.Values) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, p.url()+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return rp.send(req)
}

// code returns the code of a redirect to the RP, checking the state.
func (rp *oidcRP) code(resp *http.Response, body, nonce string) string {
	rp.t.Helper()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), rp.cfg.RedirectURL+"?") || loc.Query().Get("state") != "st-"+nonce || loc.Query().Get("code") == "" {
		rp.t.Fatalf("no code for nonce %s: %d Location=%q\n%s", nonce, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	return loc.Query().Get("code")
}

// redeem exchanges code at node p's token endpoint and verifies the ID
// token with the provider (node 1's discovery and keys).
func (rp *oidcRP) redeem(ctx context.Context, p *proc, code, nonce string) (*oauth2.Token, *oidc.IDToken, string) {
	rp.t.Helper()
	cfg := rp.cfg
	cfg.Endpoint.TokenURL = p.url() + "/token"
	tok, err := cfg.Exchange(ctx, code)
	if err != nil {
		rp.t.Fatalf("exchange on %s: %v", p.id, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		rp.t.Fatalf("ID token from %s: %v", p.id, err)
	}
	if idt.Nonce != nonce || idt.Subject != "default/alice" {
		rp.t.Fatalf("ID token from %s: nonce %q sub %q", p.id, idt.Nonce, idt.Subject)
	}
	return tok, idt, raw
}

func TestClusterOpenIDConnectGoOIDC(t *testing.T) {
	c := newTestClusterWith(t, 3, func(_ *proc, base []string) []string { return append(base, "--id-token-ttl", "7m") })
	n1, n2, n3 := c.procs[0], c.procs[1], c.procs[2]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rp := newClusterRP(ctx, t, c)
	provider, admin := rp.provider, map[string]string{"Authorization": "Bearer " + c.admin}

	// Sign in: /authorize on node 2, login to node 3, consent to node 1
	// (handed back to node 2), redeemed on node 3.
	resp, page := rp.authorize(n2, "nonce-1")
	f := formFields(t, page)
	f.Set("username", "alice")
	f.Set("password", "wonderland")
	resp, page = rp.post(n3, "/authorize/login", f)
	f = formFields(t, page)
	f.Set("consent", "allow")
	resp, page = rp.post(n1, "/authorize/consent", f)
	tok, idt, raw := rp.redeem(ctx, n3, rp.code(resp, page, "nonce-1"), "nonce-1")
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	if life := idt.Expiry.Sub(idt.IssuedAt); life != 7*time.Minute {
		t.Errorf("ID token lifetime %v, want --id-token-ttl 7m", life)
	}
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Email != "alice@example.com" || !info.EmailVerified || info.Subject != idt.Subject {
		t.Fatalf("userinfo on node 1 for a token issued on node 3: %+v %v", info, err)
	}
	clusterSameDiscovery(t, c)
	sessionCookie := rp.cookie(n1, "tokend_session")

	// Single sign-on across nodes: prompt=none on node 3, redeemed on 1.
	resp, page = rp.authorize(n3, "nonce-2", oauth2.SetAuthURLParam("prompt", "none"))
	rp.redeem(ctx, n1, rp.code(resp, page, "nonce-2"), "nonce-2")

	// A rotation through node 2: node 1 then signs with the new key and a
	// fresh provider verifies the ID tokens from before and after it.
	if code, body, _, err := do(http.MethodPost, n2.url()+"/admin/keys/rotate", "", "", admin); err != nil || code != http.StatusOK {
		t.Fatalf("rotate: %d %s %v", code, body, err)
	}
	resp, page = rp.authorize(n1, "nonce-3", oauth2.SetAuthURLParam("prompt", "none"))
	_, _, raw3 := rp.redeem(ctx, n1, rp.code(resp, page, "nonce-3"), "nonce-3")
	if kid3, _, _ := jwsHeader(t, raw3); kid3 == kidOf(t, raw) { // keys_test.go
		t.Fatalf("node 1 still signs with the key from before the rotation")
	}
	fresh, err := oidc.NewProvider(ctx, c.issuer)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{raw, raw3} {
		if _, err := fresh.Verifier(&oidc.Config{ClientID: rp.cfg.ClientID}).Verify(ctx, r); err != nil {
			t.Errorf("fresh provider after the rotation: %v", err)
		}
	}

	// Logout on node 2 ends the sign-in on every node.
	q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"out"}}
	req, _ := http.NewRequest(http.MethodGet, n2.url()+"/end_session?"+q.Encode(), nil)
	if resp, page := rp.send(req); resp.Header.Get("Location") != "http://127.0.0.1:9/bye?state=out" {
		t.Fatalf("end_session: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	for _, p := range c.procs {
		resp, _ := rp.authorize(p, "nonce-4", oauth2.SetAuthURLParam("prompt", "none"))
		if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") != "login_required" {
			t.Errorf("prompt=none on %s after logout: %d %q", p.id, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	sessionNotOnDisk(t, c, sessionCookie)
}

// cookie returns the value of the browser's cookie name for node p.
func (rp *oidcRP) cookie(p *proc, name string) string {
	u, _ := url.Parse(p.url())
	for _, ck := range rp.browser.Jar.Cookies(u) {
		if ck.Name == name && ck.Value != "" {
			return ck.Value
		}
	}
	rp.t.Fatalf("the browser has no %s cookie", name)
	return ""
}

// sessionNotOnDisk checks every node's data directory: the sign-in
// session cookie is in no file, only its SHA-256 (the session id, in the
// Raft log), which shows the right files were read.
func sessionNotOnDisk(t *testing.T, c *testCluster, cookie string) {
	t.Helper()
	sid := sha256.Sum256([]byte(cookie))
	hashed := 0
	for _, p := range c.procs {
		err := filepath.WalkDir(p.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(cookie)) {
				t.Errorf("%s holds the raw sign-in session cookie", path)
			}
			if bytes.Contains(b, sid[:]) {
				hashed++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if hashed < len(c.procs) {
		t.Errorf("the session id is in %d files, want one per node at least (the Raft log)", hashed)
	}
}

// newClusterRP registers the relying party (with a post-logout URI) and
// alice (with an e-mail address) and discovers the provider at the
// cluster's issuer.
func newClusterRP(ctx context.Context, t *testing.T, c *testCluster) *oidcRP {
	t.Helper()
	admin := map[string]string{"Authorization": "Bearer " + c.admin}
	code, body, _, err := do(http.MethodPost, c.procs[0].url()+"/admin/clients", "application/json",
		`{"name":"RP","redirect_uris":["http://127.0.0.1:9/cb"],"post_logout_redirect_uris":["http://127.0.0.1:9/bye"]}`, admin)
	var client struct{ ClientID, ClientSecret string }
	if err != nil || code != http.StatusCreated || json.Unmarshal(body, &struct {
		ID     *string `json:"client_id"`
		Secret *string `json:"client_secret"`
	}{&client.ClientID, &client.ClientSecret}) != nil {
		t.Fatalf("create client: %d %s %v", code, body, err)
	}
	if code, body, _, err := do(http.MethodPost, c.procs[1].url()+"/admin/users", "application/json",
		`{"username":"alice","password":"wonderland","email":"alice@example.com","email_verified":true}`, admin); err != nil || code != http.StatusCreated {
		t.Fatalf("create user: %d %s %v", code, body, err)
	}
	provider, err := oidc.NewProvider(ctx, c.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &oidcRP{t: t, provider: provider, browser: newBrowser(), cfg: oauth2.Config{ClientID: client.ClientID,
		ClientSecret: client.ClientSecret, RedirectURL: "http://127.0.0.1:9/cb", Endpoint: provider.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "email"}}}
}

// clusterSameDiscovery checks that every node publishes the same discovery
// document and key set: the issuer is one value for the cluster.
func clusterSameDiscovery(t *testing.T, c *testCluster) {
	t.Helper()
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
		var first []byte
		for _, p := range c.procs {
			code, body, _, err := do(http.MethodGet, p.url()+path, "", "", nil)
			if err != nil || code != http.StatusOK {
				t.Fatalf("%s on %s: %d %v", path, p.id, code, err)
			}
			if first == nil {
				first = body
			} else if !bytes.Equal(first, body) {
				t.Errorf("%s differs on %s:\n%s\nvs\n%s", path, p.id, body, first)
			}
		}
	}
}

func kidOf(t *testing.T, raw string) string {
	kid, _, _ := jwsHeader(t, raw)
	return kid
}
