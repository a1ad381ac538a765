package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// redirectCases are registered through the admin API: true when the URI
// must be accepted.
var redirectCases = []struct {
	uri string
	ok  bool
}{
	// https anywhere.
	{"https://app.example/callback", true},
	{"https://app.example:8443/cb?x=1", true},
	{"https://[2001:db8::1]/cb", true},
	// http only to loopback (RFC 8252 §7.3), as dev mode's and the README's.
	{"http://127.0.0.1:9999/callback", true},
	{"http://127.0.0.1/cb", true},
	{"http://[::1]:8080/cb", true},
	{"http://localhost:3000/cb", true},
	{"http://LOCALHOST/cb", true},
	// Private-use schemes of native apps (RFC 8252 §7.1).
	{"com.example.app:/oauth2redirect", true},
	{"com.example.app://callback", true},
	{"io.tokend.demo:/cb?x=1", true},

	// Script and local schemes.
	{"javascript://x/%0aalert(1)", false},
	{"javascript:alert(1)", false},
	{"JavaScript://x/%0aalert(1)", false},
	{"data:text/html,<script>alert(1)</script>", false},
	{"vbscript:msgbox(1)", false},
	{"file:///etc/passwd", false},
	{"file://host/share", false},
	// Plain http across the network.
	{"http://app.example/callback", false},
	{"http://10.0.0.1/cb", false},
	{"http://127.0.0.1.evil.example/cb", false},
	{"http://localhost.evil.example/cb", false},
	{"http://0.0.0.0/cb", false},
	// Fragments, relative URIs and other malformed ones.
	{"https://app.example/cb#frag", false},
	{"https://app.example/cb#", false},
	{"com.example.app:/cb#x", false},
	{"/callback", false},
	{"//app.example/cb", false},
	{"callback", false},
	{"", false},
	{"https:///cb", false},
	{"https://user:pw@app.example/cb", false},
	{"https://app.example/c b", false},
	{"https://app.example/cb\n", false},
	// Schemes without a dot are not private-use.
	{"myapp:/cb", false},
	{"ftp://app.example/cb", false},
	{"com.example.app:cb", false},
	{"com.example.app:", false},
}

func TestRedirectURIRegistration(t *testing.T) {
	e := newAZEnv(t, nil)
	// The update path: a client whose redirect URIs are replaced.
	upd := e.client("update target", []string{"https://app.example/first"}, nil, nil, false)
	for _, tc := range redirectCases {
		body := map[string]any{"name": "redirect test", "redirect_uris": []string{tc.uri}, "grant_types": []string{"authorization_code"}}
		for _, call := range []struct {
			method, path string
			okStatus     int
		}{
			{http.MethodPost, "/admin/clients", http.StatusCreated},
			{http.MethodPut, "/admin/clients/" + upd.ID, http.StatusOK},
		} {
			resp := e.admin(call.method, call.path, body)
			var v struct {
				Error        string   `json:"error"`
				Description  string   `json:"error_description"`
				RedirectURIs []string `json:"redirect_uris"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			switch {
			case tc.ok && (resp.StatusCode != call.okStatus || len(v.RedirectURIs) != 1 || v.RedirectURIs[0] != tc.uri):
				t.Errorf("%s %q: %d %+v, want %d", call.method, tc.uri, resp.StatusCode, v, call.okStatus)
			case !tc.ok && (resp.StatusCode != http.StatusBadRequest || v.Error != "invalid_redirect_uri" || !strings.Contains(v.Description, "redirect URI")):
				t.Errorf("%s %q: %d %+v, want 400 invalid_redirect_uri", call.method, tc.uri, resp.StatusCode, v)
			}
		}
	}
	// One bad URI among good ones refuses the whole registration, and a
	// refused update leaves the client as it was.
	const kept = "https://app.example/kept"
	resp := e.admin(http.MethodPut, "/admin/clients/"+upd.ID, map[string]any{"name": "x", "redirect_uris": []string{kept}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("update: %d", resp.StatusCode)
	}
	resp = e.admin(http.MethodPut, "/admin/clients/"+upd.ID, map[string]any{"name": "x",
		"redirect_uris": []string{"https://app.example/ok", "http://evil.example/cb"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("mixed update: %d", resp.StatusCode)
	}
	resp = e.admin(http.MethodGet, "/admin/clients/"+upd.ID, nil)
	var got struct {
		RedirectURIs []string `json:"redirect_uris"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if len(got.RedirectURIs) != 1 || got.RedirectURIs[0] != kept {
		t.Fatalf("refused update changed the client: %v", got.RedirectURIs)
	}
}

// TestPrivateUseSchemeCodeFlow: a native app's private-use redirect URI
// works through /authorize, login and consent, and the code it receives
// is redeemed.
func TestPrivateUseSchemeCodeFlow(t *testing.T) {
	e := newAZEnv(t, nil)
	const cb = "com.example.app:/oauth2redirect"
	app := e.client("Native App", []string{cb}, []string{"authorization_code"}, []string{"read"}, true)
	e.user("default", "alice", "alice-pw")
	cfg := e.oauth2Config(app, "read")
	verifier := oauth2.GenerateVerifier()
	code := e.codeFlow(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice", "alice-pw", app, "st")
	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := e.validate(tok.AccessToken); status != http.StatusOK {
		t.Fatalf("token from the private-use redirect: validate %d", status)
	}
	// Another scheme, or the same one with another path, is not registered.
	for _, other := range []string{"com.example.evil:/oauth2redirect", cb + "x"} {
		page := e.get(e.browser(), "/authorize?response_type=code&client_id="+app.ID+"&redirect_uri="+other+"&code_challenge=x&code_challenge_method=S256")
		page.wantPage(t, http.StatusBadRequest, "Invalid redirect URI")
	}
}
