package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBadInputs sends malformed and refused requests to /token, /revoke,
// /introspect and the admin API; each must get its RFC error code and
// status, change nothing, and leave the node healthy.
func TestBadInputs(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), nodeOpts{})
	// svc is a resource server: it introspects the other clients' tokens.
	svc := n.createClient(t, map[string]any{"name": "svc", "introspect": true, "grant_types": []string{"client_credentials"}, "scopes": []string{"read"}})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}, "scopes": []string{"read"}})
	pub := n.createClient(t, map[string]any{"name": "spa", "public": true, "redirect_uris": []string{"https://spa.example/cb"}})
	if pub.Secret != "" {
		t.Fatal("public client got a secret")
	}
	n.createUser(t, "", "alice", "alice-pw")
	live := n.passwordGrant(t, web, "", "alice", "alice-pw")
	liveCC := n.clientCreds(t, svc)

	snapshot := func() string {
		var b strings.Builder
		for _, p := range []string{"/admin/clients", "/admin/users"} {
			r := n.admin(t, "GET", p, nil)
			if r.Status != 200 {
				t.Fatalf("%s: %d", p, r.Status)
			}
			b.Write(r.Body)
		}
		return b.String()
	}
	before := snapshot()

	form := "application/x-www-form-urlencoded"
	ccBody := "client_id=" + svc.ID + "&client_secret=" + svc.Secret
	webBody := "client_id=" + web.ID + "&client_secret=" + web.Secret
	huge := strings.Repeat("a", 10<<20)

	type row struct {
		name, method, path, ctype, body string
		basic                           []string // Basic credentials, sent as given
		admin                           string   // "ok", "none" or "wrong" for /admin paths
		status                          int
		code                            string
		basicChallenge                  bool
	}
	rows := []row{
		// /token
		{name: "token: missing grant_type", path: "/token", ctype: form, body: ccBody, status: 400, code: "invalid_request"},
		{name: "token: grant_type twice", path: "/token", ctype: form, body: ccBody + "&grant_type=client_credentials&grant_type=client_credentials", status: 400, code: "invalid_request"},
		{name: "token: client_id twice", path: "/oauth/token", ctype: form, body: ccBody + "&client_id=" + svc.ID + "&grant_type=client_credentials", status: 400, code: "invalid_request"},
		{name: "token: JSON body", path: "/token", ctype: "application/json", body: `{"grant_type":"client_credentials","client_id":"` + svc.ID + `","client_secret":"` + svc.Secret + `"}`, status: 415, code: "invalid_request"},
		{name: "token: no content type", path: "/token", body: ccBody + "&grant_type=client_credentials", status: 415, code: "invalid_request"},
		{name: "token: unknown grant", path: "/token", ctype: form, body: ccBody + "&grant_type=urn:example:magic", status: 400, code: "unsupported_grant_type"},
		{name: "token: wrong secret (Basic)", path: "/token", ctype: form, body: "grant_type=client_credentials", basic: []string{svc.ID, svc.Secret + "x"}, status: 401, code: "invalid_client", basicChallenge: true},
		{name: "token: wrong secret (body)", path: "/token", ctype: form, body: "grant_type=client_credentials&client_id=" + svc.ID + "&client_secret=nope", status: 401, code: "invalid_client"},
		{name: "token: unknown client", path: "/token", ctype: form, body: "grant_type=client_credentials&client_id=nosuchclient&client_secret=x", status: 401, code: "invalid_client"},
		{name: "token: unknown client (Basic)", path: "/oauth/token", ctype: form, body: "grant_type=client_credentials", basic: []string{"nosuchclient", "x"}, status: 401, code: "invalid_client", basicChallenge: true},
		{name: "token: no client authentication", path: "/token", ctype: form, body: "grant_type=client_credentials", status: 401, code: "invalid_client"},
		{name: "token: public client on client_credentials", path: "/token", ctype: form, body: "grant_type=client_credentials&client_id=" + pub.ID, status: 400, code: "unauthorized_client"},
		{name: "token: public client sending a secret", path: "/token", ctype: form, body: "grant_type=client_credentials&client_id=" + pub.ID + "&client_secret=x", status: 401, code: "invalid_client"},
		{name: "token: grant not registered", path: "/token", ctype: form, body: ccBody + "&grant_type=password&username=alice&password=alice-pw", status: 400, code: "unauthorized_client"},
		{name: "token: scope not registered", path: "/token", ctype: form, body: ccBody + "&grant_type=client_credentials&scope=read+write", status: 400, code: "invalid_scope"},
		{name: "token: password without username", path: "/token", ctype: form, body: webBody + "&grant_type=password&password=alice-pw", status: 400, code: "invalid_request"},
		{name: "token: wrong password", path: "/token", ctype: form, body: webBody + "&grant_type=password&username=alice&password=wrong", status: 400, code: "invalid_grant"},
		{name: "token: unknown refresh token", path: "/token", ctype: form, body: webBody + "&grant_type=refresh_token&refresh_token=tkdr-nope", status: 400, code: "invalid_grant"},
		{name: "token: refresh without refresh_token", path: "/token", ctype: form, body: webBody + "&grant_type=refresh_token", status: 400, code: "invalid_request"},
		{name: "token: refresh with an access token", path: "/token", ctype: form, body: webBody + "&grant_type=refresh_token&refresh_token=" + live.AccessToken, status: 400, code: "invalid_grant"},
		{name: "token: other client's refresh token", path: "/token", ctype: form, body: "grant_type=refresh_token&refresh_token=" + live.RefreshToken, basic: []string{pub.ID, ""}, status: 400, code: "invalid_grant"},
		{name: "token: refresh wider scope", path: "/token", ctype: form, body: webBody + "&grant_type=refresh_token&scope=read+write&refresh_token=" + live.RefreshToken, status: 400, code: "invalid_scope"},
		{name: "token: invalid UTF-8", path: "/token", ctype: form, body: webBody + "&grant_type=password&username=%FF%FE&password=x", status: 400, code: "invalid_request"},
		{name: "token: malformed form", path: "/token", ctype: form, body: ccBody + "&grant_type=client_credentials&scope=%zz", status: 400, code: "invalid_request"},
		{name: "token: 10 MiB body", path: "/token", ctype: form, body: "grant_type=client_credentials&pad=" + huge, status: 413, code: "invalid_request"},
		{name: "token: GET", method: "GET", path: "/token", status: 405, code: "invalid_request"},
		{name: "token: GET /oauth/token", method: "GET", path: "/oauth/token?grant_type=client_credentials", status: 405, code: "invalid_request"},
		// /revoke
		{name: "revoke: missing token", path: "/revoke", ctype: form, body: webBody, status: 400, code: "invalid_request"},
		{name: "revoke: token twice", path: "/revoke", ctype: form, body: webBody + "&token=a&token=b", status: 400, code: "invalid_request"},
		{name: "revoke: no client authentication", path: "/revoke", ctype: form, body: "token=" + live.AccessToken, status: 401, code: "invalid_client"},
		{name: "revoke: wrong secret (Basic)", path: "/oauth/revoke", ctype: form, body: "token=" + live.AccessToken, basic: []string{web.ID, "nope"}, status: 401, code: "invalid_client", basicChallenge: true},
		{name: "revoke: two auth methods", path: "/revoke", ctype: form, body: "token=" + live.AccessToken + "&client_secret=" + web.Secret, basic: []string{web.ID, web.Secret}, status: 400, code: "invalid_request"},
		{name: "revoke: bad hint", path: "/revoke", ctype: form, body: webBody + "&token=" + live.AccessToken + "&token_type_hint=id_token", status: 400, code: "unsupported_token_type"},
		{name: "revoke: JSON body", path: "/revoke", ctype: "application/json", body: `{"token":"` + live.AccessToken + `"}`, status: 415, code: "invalid_request"},
		{name: "revoke: 10 MiB body", path: "/revoke", ctype: form, body: webBody + "&token=" + huge, status: 413, code: "invalid_request"},
		{name: "revoke: invalid UTF-8", path: "/revoke", ctype: form, body: webBody + "&token=%C3%28", status: 400, code: "invalid_request"},
		{name: "revoke: GET", method: "GET", path: "/revoke", status: 405, code: "invalid_request"},
		// /introspect
		{name: "introspect: missing token", path: "/introspect", ctype: form, body: ccBody, status: 400, code: "invalid_request"},
		{name: "introspect: no client authentication", path: "/introspect", ctype: form, body: "token=" + live.AccessToken, status: 401, code: "invalid_client"},
		{name: "introspect: public client", path: "/introspect", ctype: form, body: "client_id=" + pub.ID + "&token=" + live.AccessToken, status: 401, code: "invalid_client"},
		{name: "introspect: wrong secret (Basic)", path: "/oauth/introspect", ctype: form, body: "token=" + live.AccessToken, basic: []string{svc.ID, "nope"}, status: 401, code: "invalid_client", basicChallenge: true},
		{name: "introspect: token twice", path: "/introspect", ctype: form, body: ccBody + "&token=a&token=b", status: 400, code: "invalid_request"},
		{name: "introspect: text/plain", path: "/introspect", ctype: "text/plain", body: ccBody + "&token=a", status: 415, code: "invalid_request"},
		{name: "introspect: 10 MiB body", path: "/introspect", ctype: form, body: ccBody + "&token=" + huge, status: 413, code: "invalid_request"},
		{name: "introspect: GET", method: "GET", path: "/introspect", status: 405, code: "invalid_request"},
		// admin API
		{name: "admin: no token", method: "GET", path: "/admin/clients", admin: "none", status: 401, code: "invalid_token"},
		{name: "admin: wrong token", method: "POST", path: "/admin/clients", admin: "wrong", ctype: "application/json", body: `{"name":"x"}`, status: 401, code: "invalid_token"},
		{name: "admin: invalid JSON", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"name":`, status: 400, code: "invalid_request"},
		{name: "admin: unknown field", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"name":"x","client_secret":"mine"}`, status: 400, code: "invalid_request"},
		{name: "admin: trailing data", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"name":"x"} {"name":"y"}`, status: 400, code: "invalid_request"},
		{name: "admin: invalid UTF-8", path: "/admin/clients", admin: "ok", ctype: "application/json", body: "{\"name\":\"\xff\xfe\"}", status: 400, code: "invalid_request"},
		{name: "admin: wrong content type", path: "/admin/clients", admin: "ok", ctype: form, body: "name=x", status: 415, code: "invalid_request"},
		{name: "admin: missing name", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"grant_types":["client_credentials"]}`, status: 400, code: "invalid_request"},
		{name: "admin: unknown grant type", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"name":"x","grant_types":["magic"]}`, status: 400, code: "invalid_request"},
		{name: "admin: public client_credentials", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"name":"x","public":true,"grant_types":["client_credentials"]}`, status: 400, code: "invalid_request"},
		{name: "admin: code grant without redirect", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"name":"x","grant_types":["authorization_code"]}`, status: 400, code: "invalid_request"},
		{name: "admin: 10 MiB JSON", path: "/admin/clients", admin: "ok", ctype: "application/json", body: `{"name":"` + huge + `"}`, status: 413, code: "invalid_request"},
		{name: "admin: update unknown client", method: "PUT", path: "/admin/clients/nosuch", admin: "ok", ctype: "application/json", body: `{"name":"x"}`, status: 404, code: "not_found"},
		{name: "admin: update turns public", method: "PUT", path: "/admin/clients/" + svc.ID, admin: "ok", ctype: "application/json", body: `{"name":"svc","public":true}`, status: 400, code: "invalid_request"},
		{name: "admin: delete unknown client", method: "DELETE", path: "/admin/clients/nosuch", admin: "ok", status: 404, code: "not_found"},
		{name: "admin: rotate unknown client", path: "/admin/clients/nosuch/secret", admin: "ok", status: 404, code: "not_found"},
		{name: "admin: rotate public client", path: "/admin/clients/" + pub.ID + "/secret", admin: "ok", status: 400, code: "invalid_request"},
		{name: "admin: user without username", path: "/admin/users", admin: "ok", ctype: "application/json", body: `{"password":"x"}`, status: 400, code: "invalid_request"},
		{name: "admin: user without password", path: "/admin/users", admin: "ok", ctype: "application/json", body: `{"username":"eve"}`, status: 400, code: "invalid_request"},
		{name: "admin: duplicate user", path: "/admin/users", admin: "ok", ctype: "application/json", body: `{"username":"alice","password":"other"}`, status: 409, code: "already_exists"},
		{name: "admin: set password of unknown user", method: "PUT", path: "/admin/users/default/nosuch", admin: "ok", ctype: "application/json", body: `{"password":"x"}`, status: 404, code: "not_found"},
		{name: "admin: delete unknown user", method: "DELETE", path: "/admin/users/default/nosuch", admin: "ok", status: 404, code: "not_found"},
		{name: "admin: revoke with nothing", path: "/admin/revoke", admin: "ok", ctype: "application/json", body: `{}`, status: 400, code: "invalid_request"},
		{name: "admin: revoke client and user", path: "/admin/revoke", admin: "ok", ctype: "application/json", body: `{"client_id":"` + web.ID + `","username":"alice"}`, status: 400, code: "invalid_request"},
	}
	for _, rw := range rows {
		method := rw.method
		if method == "" {
			method = http.MethodPost
		}
		var body io.Reader
		if rw.body != "" {
			body = strings.NewReader(rw.body)
		}
		req := newReq(t, method, n.URL+rw.path, rw.ctype, body)
		if rw.basic != nil {
			req.SetBasicAuth(rw.basic[0], rw.basic[1])
		}
		switch rw.admin {
		case "ok":
			req.Header.Set("Authorization", "Bearer "+n.Admin)
		case "wrong":
			req.Header.Set("Authorization", "Bearer "+n.Admin+"-not")
		}
		r := do(t, req)
		if r.Status != rw.status {
			t.Errorf("%s: status %d, want %d (%.200s)", rw.name, r.Status, rw.status, r.Body)
			continue
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", rw.name, ct)
		}
		if code := r.errCode(t); code != rw.code {
			t.Errorf("%s: error %q, want %q (%s)", rw.name, code, rw.code, r.Body)
		}
		if wa := r.Header.Get("WWW-Authenticate"); rw.basicChallenge && !strings.HasPrefix(wa, "Basic") {
			t.Errorf("%s: WWW-Authenticate %q, want a Basic challenge", rw.name, wa)
		}
		if bytes.Contains(r.Body, []byte(huge[:1024])) {
			t.Errorf("%s: error echoes the request body", rw.name)
		}
	}

	// Wrong method on an admin path should be 405 like everywhere else.
	// Known bug (reported, httpapi/server.go routes): the gorilla/mux
	// admin subrouter loses the method mismatch when a later subroute's
	// copied "/admin" prefix matcher succeeds, so the answer is a JSON 404.
	// Logged rather than failed until the router is fixed.
	for _, mp := range [][2]string{{"GET", "/admin/revoke"}, {"PATCH", "/admin/clients"}} {
		req := newReq(t, mp[0], n.URL+mp[1], "", nil)
		req.Header.Set("Authorization", "Bearer "+n.Admin)
		r := do(t, req)
		code := r.errCode(t)
		if r.Status != 405 || code != "invalid_request" {
			t.Errorf("%s %s: %d %s, want 405 invalid_request", mp[0], mp[1], r.Status, r.Body)
		}
	}

	// A 10 MiB body on a keep-alive connection: the answer is a JSON 413
	// and the next request works (the server closes or drains, never
	// wedges).
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		io.WriteString(conn, "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: "+form+"\r\nContent-Length: "+
			strconv.Itoa(len(huge)+6)+"\r\n\r\ntoken=")
		io.WriteString(conn, huge) // may fail once the server hangs up
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw 10 MiB request: %v", err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn.Close()
	if resp.StatusCode != 413 || !bytes.Contains(rb, []byte(`"error":"invalid_request"`)) {
		t.Errorf("raw 10 MiB: %d %s", resp.StatusCode, rb)
	}

	// The node is healthy, nothing changed, normal requests work.
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := n.get(t, p); r.Status != 200 {
			t.Errorf("%s after bad inputs: %d", p, r.Status)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
	}
	if !n.valid(t, live.AccessToken) || !n.active(t, svc, live.RefreshToken) || !n.valid(t, liveCC.AccessToken) {
		t.Error("a bad input changed a live grant")
	}
	tr := n.clientCreds(t, svc)
	if !n.valid(t, tr.AccessToken) {
		t.Error("fresh token after bad inputs invalid")
	}
	// The password grant still works for alice (one wrong password is far
	// below the brute-force limit).
	n.passwordGrant(t, web, "", "alice", "alice-pw")
}
