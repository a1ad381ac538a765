package e2e

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	pageFormRe   = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	pageHiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// authorizeCode runs the authorization code flow as a browser would:
// /authorize, the login page, the consent page, and returns the code from
// the redirect to redirectURI.
func (n *node) authorizeCode(t *testing.T, c client, redirectURI, user, pass string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := b.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	submit := func(page string, set map[string]string) (*http.Response, string) {
		t.Helper()
		m := pageFormRe.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no form in page:\n%s", page)
		}
		f := url.Values{}
		for _, h := range pageHiddenRe.FindAllStringSubmatch(page, -1) {
			f.Set(h[1], html.UnescapeString(h[2]))
		}
		for k, v := range set {
			f.Set(k, v)
		}
		action, err := url.Parse(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		req := newReq(t, http.MethodPost, n.URL+action.RequestURI(), "application/x-www-form-urlencoded", strings.NewReader(f.Encode()))
		return fetch(req)
	}
	q := url.Values{"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {redirectURI}, "state": {"st"}}
	resp, page := fetch(newReq(t, http.MethodGet, n.URL+"/authorize?"+q.Encode(), "", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/authorize: %d %s", resp.StatusCode, page)
	}
	resp, page = submit(page, map[string]string{"username": user, "password": pass})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, page)
	}
	resp, page = submit(page, map[string]string{"consent": "allow"})
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode/100 != 3 || !strings.HasPrefix(loc.String(), redirectURI+"?") {
		t.Fatalf("consent: %d Location %q %s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "st" {
		t.Fatalf("redirect without code or state: %s", loc)
	}
	return code
}

// TestLateCodeReplayRevokes: an authorization code replayed after it
// expired is refused, and what its first redemption issued is revoked
// (RFC 6749 §4.1.2), just as for a replay while it was still fresh.
func TestLateCodeReplayRevokes(t *testing.T) {
	t.Parallel()
	skew := new(atomic.Int64)
	n := startNode(t, t.TempDir(), nodeOpts{Skew: skew})
	const cb = "https://app.example/cb"
	app := n.createClient(t, map[string]any{"name": "app", "redirect_uris": []string{cb},
		"grant_types": []string{"authorization_code", "refresh_token"}, "scopes": []string{"read"}})
	n.createUser(t, "", "alice", "pw")

	code := n.authorizeCode(t, app, cb, "alice", "pw")
	exchange := func() reply {
		return n.postForm(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb}}, []string{app.ID, app.Secret})
	}
	r := exchange()
	if r.Status != http.StatusOK {
		t.Fatalf("first redemption: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	access, refresh := str(m["access_token"]), str(m["refresh_token"])
	if access == "" || refresh == "" {
		t.Fatalf("first redemption issued %s", r.Body)
	}

	// Well past the code's 60 s lifetime, well within the tokens'.
	skew.Store(int64(10 * time.Minute))
	if !n.valid(t, access) || !n.active(t, app, refresh) {
		t.Fatal("tokens from the first redemption are not live before the replay")
	}
	wantInvalidGrant(t, "late code replay", exchange())
	if r := n.validate(t, access, ""); r.Status != http.StatusUnauthorized {
		t.Errorf("access token after a late code replay: /validate %d, want 401", r.Status)
	}
	if n.active(t, app, access) || n.active(t, app, refresh) {
		t.Error("tokens from the first redemption still introspect as active")
	}
	wantInvalidGrant(t, "refresh after a late code replay", n.refreshWith(t, app, refresh))
}
