package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokend/tokend/internal/loopaddr"
)

// JWT access tokens (httpapi/jwtaccess.go) across real tokend processes:
// the key set is replicated, so a JWT issued on one node verifies with the
// JWKS of any node, and its revocation through one node holds on every
// other the moment /revoke returns, exactly like an opaque token's.

// createJWTClient registers a confidential client_credentials client whose
// access tokens are JWTs.
func (c *testCluster) createJWTClient(p *proc) (id, secret string) {
	c.t.Helper()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Format       string `json:"access_token_format"`
	}
	eventually(c.t, "create JWT client", func() error {
		code, body, _, err := do(http.MethodPost, p.url()+"/admin/clients", "application/json",
			`{"name":"jwt cluster test","grant_types":["client_credentials"],"scopes":["read","write"],"access_token_format":"jwt"}`,
			map[string]string{"Authorization": "Bearer " + c.admin})
		if err != nil {
			return err
		}
		if code != http.StatusCreated {
			return fmt.Errorf("status %d: %s", code, body)
		}
		return json.Unmarshal(body, &out)
	})
	if out.Format != "jwt" {
		c.t.Fatalf("registration answered access_token_format %q", out.Format)
	}
	return out.ClientID, out.ClientSecret
}

// jwtClaims are the claims of an at+jwt this test checks.
type jwtClaims struct {
	josejwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// verifyJWT verifies tok with the JWKS that p serves, as a resource server
// would offline.
func verifyJWT(t *testing.T, p *proc, tok, issuer string) jwtClaims {
	t.Helper()
	code, body, _, err := do(http.MethodGet, p.url()+"/.well-known/jwks.json", "", "", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("JWKS from %s: %d %v %s", p.id, code, err, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS from %s: %v", p.id, err)
	}
	parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("access token is not a JWS: %v", err)
	}
	h := parsed.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		t.Fatalf("typ %q, want at+jwt", typ)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in %s's JWKS", h.KeyID, len(keys), p.id)
	}
	var c jwtClaims
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		t.Fatalf("signature against %s's JWKS: %v", p.id, err)
	}
	if err := c.Claims.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, AnyAudience: josejwt.Audience{c.ClientID}}, time.Minute); err != nil {
		t.Fatalf("claims %+v: %v", c, err)
	}
	if c.ID == "" || c.Subject == "" || c.IssuedAt == nil || c.Expiry == nil {
		t.Fatalf("claims %+v lack jti, sub, iat or exp", c)
	}
	return c
}

func introspectActive(t *testing.T, p *proc, id, secret, tok string) bool {
	t.Helper()
	var v struct {
		Active *bool  `json:"active"`
		JTI    string `json:"jti"`
	}
	eventually(t, "definite introspection from "+p.id, func() error {
		form := url.Values{"token": {tok}, "client_id": {id}, "client_secret": {secret}}
		code, body, _, err := do(http.MethodPost, p.url()+"/introspect", "application/x-www-form-urlencoded", form.Encode(), nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("introspect: %d %s", code, body)
		}
		return json.Unmarshal(body, &v)
	})
	if v.Active == nil {
		t.Fatalf("introspection from %s without active", p.id)
	}
	return *v.Active
}

// TestClusterJWTRevocation: a JWT issued (by golang.org/x/oauth2's
// clientcredentials) on any node verifies with every node's JWKS and
// validates everywhere; revoked through another node, it is refused by
// /validate and introspection on every node immediately after /revoke
// returns (validateEventually retries only a 503, never a stale 200).
func TestClusterJWTRevocation(t *testing.T) {
	c := newTestCluster(t, 3)
	id, secret := c.createJWTClient(c.procs[0])
	for i, issuer := range c.procs {
		cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: issuer.url() + "/token", Scopes: []string{"read"}}
		var tok string
		eventually(t, "issue a JWT on "+issuer.id, func() error {
			ctx := context.WithValue(withTimeout(t), oauth2.HTTPClient, httpc)
			ot, err := cc.Token(ctx)
			if err != nil {
				return err
			}
			tok = ot.AccessToken
			return nil
		})
		for _, p := range c.procs {
			claims := verifyJWT(t, p, tok, c.issuer)
			if claims.Subject != id || claims.ClientID != id || claims.Scope != "read" {
				t.Fatalf("claims %+v", claims)
			}
			if code := validateEventually(t, p, tok); code != http.StatusOK {
				t.Fatalf("JWT issued on %s: %s answered %d, want 200", issuer.id, p.id, code)
			}
		}
		revoker := c.procs[(i+1)%len(c.procs)]
		if _, err := revoke(revoker, id, secret, tok); err != nil {
			t.Fatal(err)
		}
		for _, p := range c.procs {
			if code := validateEventually(t, p, tok); code != http.StatusUnauthorized {
				t.Fatalf("JWT revoked on %s: %s answered %d, want 401", revoker.id, p.id, code)
			}
			if introspectActive(t, p, id, secret, tok) {
				t.Fatalf("JWT revoked on %s: %s introspects it as active", revoker.id, p.id)
			}
		}
		// The signature is still good: only the index knows it is revoked.
		verifyJWT(t, c.procs[(i+2)%len(c.procs)], tok, c.issuer)
	}
}

// isJWT tells a compact JWS from an opaque token.
func isJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// The linearizability test (linearizability_test.go) issues about half of
// its tokens to a JWT client, so its history covers JWT revocation too.

// issuerCreds picks the client of the next issue: the JWT client about
// half the time (by the clock's parity), when there is one.
func (r *linRecorder) issuerCreds() (id, secret string) {
	if r.jwtID != "" && r.now()%2 == 0 {
		r.mu.Lock()
		r.counts["issue calls as the jwt client"]++ // in the logged counts
		r.mu.Unlock()
		return r.jwtID, r.jwtSec
	}
	return r.clientID, r.sec
}

// ownerCreds is the client that owns tok, the one that may revoke it.
func (r *linRecorder) ownerCreds(tok string) (id, secret string) {
	if r.jwtID != "" && isJWT(tok) {
		return r.jwtID, r.jwtSec
	}
	return r.clientID, r.sec
}

// TestAdminCLIAccessTokenFormat: tokend client create/update/get carry
// --access-token-format; update without it makes the client opaque again
// (update replaces the registration), and an unknown format is refused.
func TestAdminCLIAccessTokenFormat(t *testing.T) {
	p := startNode(t, "cli-jwt", "--admin-token", testAdminToken)
	c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}
	c.waitReady(p)
	tokend := func(args ...string) (map[string]any, error) {
		var out strings.Builder
		args = append(args, "--addr", p.url(), "--admin-token", testAdminToken)
		if err := run(withTimeout(t), args, &out, &out); err != nil {
			return nil, fmt.Errorf("tokend %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out.String()), &v); err != nil {
			return nil, fmt.Errorf("tokend %s: not JSON: %s", args[0], out.String())
		}
		return v, nil
	}
	created, err := tokend("client", "create", "--name", "jwt", "--grant", "client_credentials", "--access-token-format", "jwt")
	if err != nil || created["access_token_format"] != "jwt" {
		t.Fatalf("client create: %v %v", created, err)
	}
	id, secret := created["client_id"].(string), created["client_secret"].(string)
	tok, _, err := issue(p, id, secret)
	if err != nil || !isJWT(tok) {
		t.Fatalf("a jwt client's token %q (%v)", tok, err)
	}
	if got, err := tokend("client", "get", id); err != nil || got["access_token_format"] != "jwt" {
		t.Fatalf("client get: %v %v", got, err)
	}
	if got, err := tokend("client", "update", id, "--name", "jwt", "--grant", "client_credentials"); err != nil || got["access_token_format"] != "opaque" {
		t.Fatalf("client update without the flag: %v %v", got, err)
	}
	if tok, _, err = issue(p, id, secret); err != nil || isJWT(tok) {
		t.Fatalf("an opaque client's token %q (%v)", tok, err)
	}
	if _, err := tokend("client", "create", "--name", "x", "--grant", "client_credentials", "--access-token-format", "paseto"); err == nil ||
		!strings.Contains(err.Error(), "access_token_format") {
		t.Fatalf("an unknown format: %v", err)
	}
}

// TestValidateListenerJWT: the fast /validate listener (package gateway)
// takes a JWT access token like an opaque one, refuses forgeries of it,
// and sees its revocation.
func TestValidateListenerJWT(t *testing.T) {
	validateAddr := loopaddr.ForTest(t)
	p := startNode(t, "gw-jwt", "--validate-addr", validateAddr, "--admin-token", testAdminToken)
	c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}
	c.waitReady(p)
	fast := "http://" + validateAddr
	id, secret := c.createJWTClient(p)
	tok, _, err := issue(p, id, secret)
	if err != nil || !isJWT(tok) {
		t.Fatalf("issue: %q %v", tok, err)
	}
	get := func(tok string) int {
		t.Helper()
		code, _, _, err := do(http.MethodGet, fast+"/validate?scope=read", "", "", map[string]string{"Authorization": "Bearer " + tok})
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	if code := get(tok); code != http.StatusOK {
		t.Fatalf("fast /validate of a JWT: %d", code)
	}
	parts := strings.Split(tok, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	if code := get(none); code != http.StatusUnauthorized {
		t.Fatalf("fast /validate of an alg:none copy: %d", code)
	}
	if _, err := revoke(p, id, secret, tok); err != nil {
		t.Fatal(err)
	}
	if code := get(tok); code != http.StatusUnauthorized {
		t.Fatalf("fast /validate of a revoked JWT: %d", code)
	}
}
