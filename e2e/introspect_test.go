package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestIntrospectionRestricted: /introspect tells a client about its own
// tokens only, unless the client is registered as a resource server
// ("introspect": true). Anyone else gets exactly {"active":false}, the
// answer for an unknown token, so a client registered for
// client_credentials cannot read other clients' users and tenants
// (RFC 7662 §4). /validate is unaffected.
func TestIntrospectionRestricted(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), nodeOpts{})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}, "scopes": []string{"read"}})
	svc := n.createClient(t, map[string]any{"name": "svc", "grant_types": []string{"client_credentials"}})
	rs := n.createClient(t, map[string]any{"name": "api", "grant_types": []string{"client_credentials"}, "introspect": true})
	n.createUser(t, "acme", "alice", "pw")
	tr := n.passwordGrant(t, web, "acme", "alice", "pw")
	cc := n.clientCreds(t, svc)

	inactive := func(who client, tok, what string) {
		t.Helper()
		r := n.postForm(t, "/introspect", url.Values{"token": {tok}}, []string{who.ID, who.Secret})
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"active":false}` {
			t.Errorf("%s: %d %s, want exactly {\"active\":false}", what, r.Status, r.Body)
		}
	}
	inactive(svc, tr.AccessToken, "client without the flag, another client's access token")
	inactive(svc, tr.RefreshToken, "client without the flag, another client's refresh token")
	inactive(web, cc.AccessToken, "client without the flag, another client's client_credentials token")

	// Its own tokens, yes.
	if m := n.introspect(t, svc, cc.AccessToken); m["active"] != true || m["client_id"] != svc.ID {
		t.Errorf("own client_credentials token: %v", m)
	}
	if m := n.introspect(t, web, tr.AccessToken); m["active"] != true || m["username"] != "alice" || m["tenant_id"] != "acme" {
		t.Errorf("own access token: %v", m)
	}
	// A resource server, every client's.
	for _, tok := range []string{tr.AccessToken, tr.RefreshToken} {
		if m := n.introspect(t, rs, tok); m["active"] != true || m["client_id"] != web.ID || m["username"] != "alice" || m["tenant_id"] != "acme" {
			t.Errorf("resource server: %v", m)
		}
	}
	if m := n.introspect(t, rs, cc.AccessToken); m["active"] != true || m["client_id"] != svc.ID {
		t.Errorf("resource server, client_credentials token: %v", m)
	}
	if !n.valid(t, tr.AccessToken) || !n.valid(t, cc.AccessToken) {
		t.Error("/validate changed")
	}

	// The admin API shows and changes the flag.
	flag := func(id string) any {
		t.Helper()
		r := n.admin(t, http.MethodGet, "/admin/clients/"+id, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET client: %d %s", r.Status, r.Body)
		}
		return r.json(t)["introspect"]
	}
	if flag(rs.ID) != true || flag(svc.ID) != false {
		t.Fatalf("GET /admin/clients: introspect %v for the resource server, %v for svc", flag(rs.ID), flag(svc.ID))
	}
	put := func(id string, body map[string]any) {
		t.Helper()
		r := n.admin(t, http.MethodPut, "/admin/clients/"+id, body)
		if r.Status != http.StatusOK {
			t.Fatalf("PUT client: %d %s", r.Status, r.Body)
		}
		if r.json(t)["introspect"] != body["introspect"] {
			t.Fatalf("PUT answered %s", r.Body)
		}
	}
	put(svc.ID, map[string]any{"name": "svc", "grant_types": []string{"client_credentials"}, "introspect": true})
	if m := n.introspect(t, svc, tr.AccessToken); m["active"] != true || m["username"] != "alice" {
		t.Errorf("after PUT introspect:true: %v", m)
	}
	put(rs.ID, map[string]any{"name": "api", "grant_types": []string{"client_credentials"}, "introspect": false})
	inactive(rs, tr.AccessToken, "resource server after PUT introspect:false")
	if flag(rs.ID) != false || flag(svc.ID) != true {
		t.Error("GET does not show the updated flags")
	}
	// A public client cannot introspect at all, so it cannot be one.
	r := n.admin(t, http.MethodPost, "/admin/clients", map[string]any{"name": "spa", "public": true,
		"redirect_uris": []string{"https://spa.example/cb"}, "introspect": true})
	if r.Status != http.StatusBadRequest || r.errCode(t) != "invalid_request" {
		t.Errorf("public client with introspect: %d %s", r.Status, r.Body)
	}
}
