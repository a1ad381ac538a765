package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
	"github.com/tokend/tokend/keys"
)

// github.com/coreos/go-oidc/v3, unmodified, as the relying party of a real
// server: it knows nothing but the issuer URL, the client id and the
// secret. The issuer must be the URL the provider is discovered at, so the
// server listens before it is built.

// newRPEnv starts a server whose issuer is its own URL, signing with a
// keys.Manager of alg, and returns its replicator too.
func newRPEnv(t *testing.T, alg string) (*azEnv, *keys.Manager, string, httpapi.Replicator) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	f := fsm.New()
	rep := httpapi.NewMemReplicator(f)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	sealer, err := keys.NewSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.New(keys.Config{FSM: f, Apply: rep.Apply, Sealer: sealer, Alg: alg, Algs: []string{alg}, RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpapi.New(httpapi.Config{FSM: f, Replicator: rep, AdminToken: azAdminToken, Issuer: issuer, Signer: km,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &azEnv{t: t, srv: srv}, km, issuer, rep
}

// rpSignIn runs the authorization code flow the RP's way and returns the
// token response. The browser signs in when it has to, and approves.
func rpSignIn(t *testing.T, e *azEnv, b *http.Client, cfg *oauth2.Config, nonce string) *oauth2.Token {
	t.Helper()
	page := e.get(b, strings.TrimPrefix(cfg.AuthCodeURL("st-"+nonce, oidc.Nonce(nonce)), e.srv.URL))
	if page.status == http.StatusOK && strings.Contains(page.body, "Sign in") {
		page = e.login(b, page, "alice", "pw")
	}
	if page.status == http.StatusOK && strings.Contains(page.body, "wants to access your account") {
		page = e.consent(b, page, "allow")
	}
	loc := page.header.Get("Location")
	if !strings.HasPrefix(loc, cfg.RedirectURL+"?") {
		t.Fatalf("sign-in ended with %d at %q:\n%s", page.status, loc, page.body)
	}
	u, _ := http.NewRequest(http.MethodGet, loc, nil)
	if u.URL.Query().Get("state") != "st-"+nonce {
		t.Fatalf("state lost: %q", loc)
	}
	tok, err := cfg.Exchange(context.Background(), u.URL.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func jwsKid(t *testing.T, raw string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Kid, Alg string }
	if err := json.Unmarshal(h, &v); err != nil {
		t.Fatal(err)
	}
	return v.Alg + "/" + v.Kid
}

func TestGoOIDCRelyingParty(t *testing.T) {
	for _, alg := range []string{keys.ES256, keys.RS256} {
		t.Run(alg, func(t *testing.T) { testGoOIDC(t, alg) })
	}
}

func testGoOIDC(t *testing.T, alg string) {
	e, km, issuer, rep := newRPEnv(t, alg)
	app := e.client("RP", []string{"https://rp.example/cb"}, nil, []string{"read"}, false)
	e.oiUser("default", "alice", "pw", map[string]any{"name": "Alice Liddell", "email": "alice@example.com", "email_verified": true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: app.ID, ClientSecret: app.Secret, RedirectURL: app.Redirect,
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	b := e.browser()
	tok := rpSignIn(t, e, b, cfg, "nonce-one")
	raw, _ := tok.Extra("id_token").(string)

	verifier := provider.Verifier(&oidc.Config{ClientID: app.ID})
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refuses the ID token: %v", err)
	}
	if idt.Issuer != issuer || idt.Subject != "default/alice" || idt.Nonce != "nonce-one" || idt.AccessTokenHash == "" {
		t.Fatalf("ID token %+v", idt)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}

	// What the relying party must catch.
	if _, err := provider.Verifier(&oidc.Config{ClientID: "another-client"}).Verify(ctx, raw); err == nil {
		t.Error("an ID token for another audience verified")
	}
	late := provider.Verifier(&oidc.Config{ClientID: app.ID, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if _, err := late.Verify(ctx, raw); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired ID token verified: %v", err)
	}
	parts := strings.Split(raw, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issuer+`","sub":"default/mallory","aud":"`+app.ID+`","exp":9999999999,"iat":1}`)) + "." + parts[2]
	if _, err := verifier.Verify(ctx, forged); err == nil {
		t.Error("an ID token with changed claims verified")
	}
	// A second sign-in (single sign-on: no page) with another nonce: the
	// RP that compares nonces tells the two apart.
	tok2 := rpSignIn(t, e, b, cfg, "nonce-two")
	idt2, err := verifier.Verify(ctx, tok2.Extra("id_token").(string))
	if err != nil || idt2.Nonce != "nonce-two" || idt2.Nonce == idt.Nonce {
		t.Fatalf("second ID token: %v %+v", err, idt2)
	}

	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var extra struct {
		Name   string `json:"name"`
		Tenant string `json:"tenant_id"`
	}
	if err := info.Claims(&extra); err != nil || info.Subject != idt.Subject || info.Email != "alice@example.com" ||
		!info.EmailVerified || extra.Name != "Alice Liddell" || extra.Tenant != "default" {
		t.Fatalf("userinfo %+v %+v (%v)", info, extra, err)
	}
	if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: raw, TokenType: "Bearer"})); err == nil {
		t.Error("/userinfo accepted an ID token as the access token")
	}

	testGoOIDCRotation(ctx, t, e, b, cfg, km, rep, issuer, raw)
}

// testGoOIDCRotation rotates the keys after raw was signed: a fresh
// provider verifies ID tokens from before and after the rotation, until
// the retired key is purged.
func testGoOIDCRotation(ctx context.Context, t *testing.T, e *azEnv, b *http.Client, cfg *oauth2.Config, km *keys.Manager,
	rep httpapi.Replicator, issuer, raw string) {
	app := azClient{ID: cfg.ClientID}
	// A key rotation: a fresh provider verifies tokens signed before and
	// after it (the retired key stays published).
	if _, err := km.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	tok3 := rpSignIn(t, e, b, cfg, "nonce-three")
	raw3 := tok3.Extra("id_token").(string)
	if jwsKid(t, raw3) == jwsKid(t, raw) {
		t.Fatalf("the rotation did not change the signing key (%s)", jwsKid(t, raw))
	}
	fresh, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	fv := fresh.Verifier(&oidc.Config{ClientID: app.ID})
	for name, r := range map[string]string{"before the rotation": raw, "after the rotation": raw3} {
		if _, err := fv.Verify(ctx, r); err != nil {
			t.Errorf("ID token signed %s: %v", name, err)
		}
	}

	// Until the old tokens expire: once the retired key's time is up
	// (RetireAfter, an hour here) a purge drops it, and a fresh provider
	// verifies the new token but no longer the old one.
	if res, err := rep.Apply(ctx, fsm.Encode(&fsm.Purge{Now: time.Now().Add(2 * time.Hour).UnixNano()})); err != nil || res.Outcome != fsm.OK {
		t.Fatalf("purge: %v %v", res.Outcome, err)
	}
	later, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	lv := later.Verifier(&oidc.Config{ClientID: app.ID})
	if _, err := lv.Verify(ctx, raw3); err != nil {
		t.Errorf("the current key's ID token after the purge: %v", err)
	}
	if _, err := lv.Verify(ctx, raw); err == nil {
		t.Error("an ID token of a removed key still verifies")
	}
}
