package e2e

import (
	"context"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestTokenSourceRefresh lets golang.org/x/oauth2 refresh an access token
// that really expired, on a node with a 2 s access TTL and no refresh
// grace: the refresh token rotates, and presenting the old one afterwards
// is reuse, which revokes the whole grant.
func TestTokenSourceRefresh(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), nodeOpts{AccessTTL: 2 * time.Second, RefreshGrace: -1})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}, "scopes": []string{"read"}})
	n.createUser(t, "", "alice", "pw")
	ctx := context.Background()

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		conf := &oauth2.Config{ClientID: web.ID, ClientSecret: web.Secret,
			Endpoint: oauth2.Endpoint{TokenURL: n.URL + "/oauth/token", AuthStyle: style}}
		first, err := conf.PasswordCredentialsToken(ctx, "alice", "pw")
		if err != nil {
			t.Fatal(err)
		}
		if exp := first.Expiry.Sub(time.Now()); exp > 3*time.Second || exp <= 0 {
			t.Fatalf("expiry in %v, want about 2s", exp)
		}
		// Refresh only once the token has really expired (default early
		// expiry is 10 s, longer than the TTL).
		ts := oauth2.ReuseTokenSourceWithExpiry(first, conf.TokenSource(ctx, first), time.Nanosecond)
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != first.AccessToken {
			t.Fatal("token source refreshed a token that had not expired")
		}
		if !n.valid(t, first.AccessToken) {
			t.Fatal("fresh token invalid")
		}
		deadline := time.Now().Add(15 * time.Second)
		for tok.AccessToken == first.AccessToken {
			if time.Now().After(deadline) {
				t.Fatal("token source never refreshed")
			}
			time.Sleep(50 * time.Millisecond)
			if tok, err = ts.Token(); err != nil {
				t.Fatalf("refresh: %v", err)
			}
		}
		if tok.RefreshToken == "" || tok.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh token not rotated: %q", tok.RefreshToken)
		}
		if n.valid(t, first.AccessToken) {
			t.Error("expired access token still validates")
		}
		if m := n.introspect(t, web, first.AccessToken); m["active"] != false {
			t.Errorf("expired token introspects as %v", m)
		}
		if !n.valid(t, tok.AccessToken) || !n.active(t, web, tok.RefreshToken) {
			t.Fatal("refreshed tokens invalid")
		}
		if c, _ := tok.Extra("token_issued_counter").(float64); c < 2 {
			t.Errorf("counter after refresh %v", tok.Extra("token_issued_counter"))
		}
		// Reuse of the rotated-out refresh token (grace 0): invalid_grant
		// and the grant is gone.
		r := n.postForm(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}, []string{web.ID, web.Secret})
		if r.Status != 400 || r.errCode(t) != "invalid_grant" {
			t.Fatalf("reuse: %d %s", r.Status, r.Body)
		}
		if n.valid(t, tok.AccessToken) || n.active(t, web, tok.RefreshToken) {
			t.Error("reuse of a rotated refresh token left the grant alive")
		}
		if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Error("refresh with the revoked grant's successor token succeeded")
		}
	}
}

// TestRefreshGraceZeroImmediateRetry: with grace 0, even an immediate
// retry of a rotated refresh token is reuse.
func TestRefreshGraceZeroImmediateRetry(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), nodeOpts{RefreshGrace: -1})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}})
	n.createUser(t, "", "alice", "pw")
	t1 := n.passwordGrant(t, web, "", "alice", "pw")
	t2 := n.issue(t, web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t1.RefreshToken}})
	r := n.postForm(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t1.RefreshToken}}, []string{web.ID, web.Secret})
	if r.Status != 400 || r.errCode(t) != "invalid_grant" {
		t.Fatalf("immediate retry with grace 0: %d %s", r.Status, r.Body)
	}
	if n.valid(t, t2.AccessToken) || n.active(t, web, t2.RefreshToken) {
		t.Error("grant alive after reuse with grace 0")
	}
}
