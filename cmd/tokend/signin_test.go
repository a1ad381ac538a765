package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var hiddenField = regexp.MustCompile(`name="(request_id|csrf_token)" value="([^"]+)"`)

// formFields returns the hidden request_id and csrf_token of a page.
func formFields(t *testing.T, page string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	if v.Get("request_id") == "" || v.Get("csrf_token") == "" {
		t.Fatalf("page lacks request_id/csrf_token:\n%s", page)
	}
	return v
}

// webAppAndAlice registers, through p's admin API, the code-flow client and
// the user alice (password "wonderland") every sign-in test starts from.
func webAppAndAlice(t *testing.T, c *testCluster, p *proc) (clientID, clientSecret string) {
	t.Helper()
	admin := map[string]string{"Authorization": "Bearer " + c.admin}
	code, body, _, err := do(http.MethodPost, p.url()+"/admin/clients", "application/json",
		`{"name":"Web app","redirect_uris":["http://127.0.0.1:9/cb"],"grant_types":["authorization_code"],"scopes":["read"]}`, admin)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create client: %d %s %v", code, body, err)
	}
	var created struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	if code, body, _, err := do(http.MethodPost, p.url()+"/admin/users", "application/json",
		`{"username":"alice","password":"wonderland"}`, admin); err != nil || code != http.StatusCreated {
		t.Fatalf("create user: %d %s %v", code, body, err)
	}
	return created.ID, created.Secret
}

// newBrowser keeps cookies like a browser but does not follow redirects,
// so a test can read where it is sent.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: httpc.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestClusterSignInAcrossNodes: a browser behind a load balancer without
// session affinity opens /authorize on one node, posts the login form to a
// second and the consent form to a third, and still gets a code, which
// works exactly once.
func TestClusterSignInAcrossNodes(t *testing.T) {
	c := newTestCluster(t, 3)
	n1, n2, n3 := c.procs[0], c.procs[1], c.procs[2]
	var client struct{ ClientID, ClientSecret string }
	client.ClientID, client.ClientSecret = webAppAndAlice(t, c, n1)
	browser := newBrowser()
	send := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	post := func(p *proc, path string, form url.Values) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, p.url()+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return send(req)
	}

	q := url.Values{"response_type": {"code"}, "client_id": {client.ClientID}, "state": {"s1"}, "scope": {"read"}}
	req, _ := http.NewRequest(http.MethodGet, n1.url()+"/authorize?"+q.Encode(), nil)
	resp, page := send(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize on %s: %d\n%s", n1.id, resp.StatusCode, page)
	}
	login := formFields(t, page)
	login.Set("username", "alice")
	login.Set("password", "wonderland")
	login.Set("tenant_id", "default")
	resp, page = post(n2, "/authorize/login", login)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="consent"`) {
		t.Fatalf("login posted to %s: %d\n%s", n2.id, resp.StatusCode, page)
	}
	consent := formFields(t, page)
	consent.Set("consent", "allow")
	resp, page = post(n3, "/authorize/consent", consent)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || loc == nil ||
		loc.Query().Get("code") == "" || loc.Query().Get("state") != "s1" {
		t.Fatalf("consent posted to %s: %d Location=%q\n%s", n3.id, resp.StatusCode, resp.Header.Get("Location"), page)
	}
	if resp, page = post(n2, "/authorize/consent", consent); resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
		t.Fatalf("consent replayed on %s redirected again: %s", n2.id, resp.Header.Get("Location"))
	}

	// Redeem the code on a follower: its answer comes from the Result the
	// leader forwarded back, scope included, not from a local read-back.
	var leader *proc
	eventually(t, "leader", func() (err error) { leader, err = c.leader(); return err })
	follower := n2
	if follower == leader {
		follower = n3
	}
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"client_id": {client.ClientID}, "client_secret": {client.ClientSecret}}
	code, body, _, err := do(http.MethodPost, follower.url()+"/token", "application/x-www-form-urlencoded", exchange.Encode(), nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("code exchange on %s: %d %s %v", follower.id, code, body, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response: %s", body)
	}
	if tok.Scope != "read" {
		t.Errorf("code exchange on follower %s (leader %s): scope %q, want \"read\"\n%s", follower.id, leader.id, tok.Scope, body)
	}
	for _, p := range c.procs {
		if got := validateEventually(t, p, tok.AccessToken); got != http.StatusOK {
			t.Fatalf("%s answers %d for the code-flow token", p.id, got)
		}
	}
}

// TestClusterSignInHandOffCountsClientAddr: behind a trusted proxy
// (--trusted-proxies 127.0.0.1/32), failed logins posted to node2 for a
// sign-in node1 owns are handed to node1 and count there against the
// client the proxy named in X-Forwarded-For, not against node2's internal
// address: once that client has spent the address budget it is refused on
// both nodes, while another client behind the same proxy, handed off by
// the same node2, signs in.
func TestClusterSignInHandOffCountsClientAddr(t *testing.T) {
	c := newTestClusterWith(t, 2, func(_ *proc, base []string) []string {
		return append(base, "--trusted-proxies", "127.0.0.1/32")
	})
	n1, n2 := c.procs[0], c.procs[1]
	var client struct{ ID string }
	client.ID, _ = webAppAndAlice(t, c, n1)
	browser := newBrowser()
	send := func(req *http.Request) (int, string) {
		t.Helper()
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	q := url.Values{"response_type": {"code"}, "client_id": {client.ID}, "state": {"s1"}, "scope": {"read"}}
	req, _ := http.NewRequest(http.MethodGet, n1.url()+"/authorize?"+q.Encode(), nil)
	status, page := send(req)
	if status != http.StatusOK {
		t.Fatalf("authorize on %s: %d\n%s", n1.id, status, page)
	}
	login := formFields(t, page)
	// post sends the login form to p as the proxy does for client.
	post := func(p *proc, client, username, password string) (int, string) {
		t.Helper()
		f := url.Values{}
		for k, v := range login {
			f[k] = v
		}
		f.Set("username", username)
		f.Set("password", password)
		req, _ := http.NewRequest(http.MethodPost, p.url()+"/authorize/login", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", client)
		return send(req)
	}

	const attacker, neighbour = "203.0.113.7", "203.0.113.8"
	// The budget is 100 failures per 15 minutes, refilling as it goes,
	// so the refusal comes at the 100th failure or a little after.
	failures := 0
	for ; failures < 130; failures++ {
		status, page := post(n2, attacker, fmt.Sprintf("ghost%d", failures), "guess")
		if status == http.StatusTooManyRequests {
			break
		}
		if status != http.StatusUnauthorized || !strings.Contains(page, "Incorrect username or password") {
			t.Fatalf("failure %d via %s: %d\n%s", failures+1, n2.id, status, page)
		}
	}
	if failures < 100 || failures >= 130 {
		t.Fatalf("refused after %d failures, want 100 or a few more", failures)
	}
	for _, p := range []*proc{n2, n1} {
		if status, page := post(p, attacker, "alice", "wonderland"); status != http.StatusTooManyRequests {
			t.Fatalf("the blocked client via %s: %d\n%s", p.id, status, page)
		}
	}
	if !strings.Contains(n1.out.String(), "kind=address remote_addr="+attacker+" ") {
		t.Errorf("%s logged no address lock-out for %s:\n%s", n1.id, attacker, tail(n1.out, 20))
	}
	for p, want := range map[*proc]string{n1: "1", n2: "0"} {
		_, metrics, _, err := do(http.MethodGet, p.url()+"/metrics", "", "", nil)
		if line := `tokend_login_lockouts_total{kind="address"} ` + want; err != nil || !strings.Contains(string(metrics), line+"\n") {
			t.Errorf("%s /metrics lacks %q (%v)", p.id, line, err)
		}
	}
	// node2's own address was charged nothing.
	if status, page := post(n2, neighbour, "alice", "wonderland"); status != http.StatusOK || !strings.Contains(page, `name="consent"`) {
		t.Fatalf("another client via %s: %d\n%s", n2.id, status, page)
	}
}
