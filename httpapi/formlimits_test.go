package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/tokend/tokend/fsm"
)

// flPost sends a form post from remote (host:port) through the whole
// handler stack.
func flPost(s *Server, path, remote string, form url.Values, basic ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = remote
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func flError(t *testing.T, rec *httptest.ResponseRecorder) (string, string) {
	t.Helper()
	var v struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if rec.Body.Len() == 0 && rec.Code < 300 {
		return "", ""
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%d, not JSON: %q", rec.Code, rec.Body)
	}
	return v.Error, v.Description
}

// Every form field tokend reads has a length bound; one byte over it is
// invalid_request (400) naming the field, on every endpoint, and a value
// at the bound is not refused for its length.
func TestFormFieldLimits(t *testing.T) {
	s, f := newMemServer(t)
	f.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "app", SecretHash: fsm.HashOf("sec"),
		GrantTypes: []string{"password", "refresh_token", "authorization_code"}, Scopes: []string{"read"},
		RedirectURIs: []string{"https://app.example/cb"}}}))
	over := func(field string) string { return strings.Repeat("a", fieldLimits[field]+1) }
	at := func(field string) string { return strings.Repeat("a", fieldLimits[field]) }
	grant := url.Values{"grant_type": {"password"}, "username": {"ann"}, "password": {"pw"}}
	with := func(base url.Values, kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	rows := []struct {
		path, field string
		form        url.Values
		basic       bool
	}{
		{"/token", "username", grant, true},
		{"/token", "tenant_id", grant, true},
		{"/token", "password", grant, true},
		{"/token", "scope", grant, true},
		{"/token", "grant_type", grant, true},
		{"/oauth/token", "client_id", with(grant, "client_secret", "sec"), false},
		{"/token", "client_secret", with(grant, "client_id", "app"), false},
		{"/token", "refresh_token", url.Values{"grant_type": {"refresh_token"}}, true},
		{"/token", "code", url.Values{"grant_type": {"authorization_code"}}, true},
		{"/token", "code_verifier", url.Values{"grant_type": {"authorization_code"}, "code": {"c"}}, true},
		{"/token", "redirect_uri", url.Values{"grant_type": {"authorization_code"}, "code": {"c"}}, true},
		{"/revoke", "token", url.Values{}, true},
		{"/revoke", "token_type_hint", url.Values{"token": {"t"}}, true},
	}
	for _, rw := range rows {
		basic := []string{}
		if rw.basic {
			basic = []string{"app", "sec"}
		}
		rec := flPost(s, rw.path, "192.0.2.1:1", with(rw.form, rw.field, over(rw.field)), basic...)
		code, desc := flError(t, rec)
		if rec.Code != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(desc, rw.field) ||
			!strings.Contains(desc, fmt.Sprint(fieldLimits[rw.field])) {
			t.Errorf("%s %s one byte over the limit: %d %s %q, want 400 invalid_request naming the field and its limit",
				rw.path, rw.field, rec.Code, code, desc)
		}
		if strings.Contains(rec.Body.String(), over(rw.field)[:64]) {
			t.Errorf("%s %s: the error echoes the value", rw.path, rw.field)
		}
		rec = flPost(s, rw.path, "192.0.2.2:1", with(rw.form, rw.field, at(rw.field)), basic...)
		if code, desc := flError(t, rec); code == "invalid_request" && strings.Contains(desc, "longer than") {
			t.Errorf("%s %s at the limit refused for its length: %d %q", rw.path, rw.field, rec.Code, desc)
		}
	}

	// HTTP Basic credentials have the same limits as the body's.
	for _, field := range []string{"client_id", "client_secret"} {
		id, secret := "app", "sec"
		if field == "client_id" {
			id = over(field)
		} else {
			secret = over(field)
		}
		rec := flPost(s, "/token", "192.0.2.3:1", grant, id, secret)
		if code, desc := flError(t, rec); rec.Code != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(desc, field) {
			t.Errorf("Basic %s one byte over the limit: %d %s %q, want 400 invalid_request naming it", field, rec.Code, code, desc)
		}
	}

	// The authorization endpoint: an oversize client_id or redirect_uri is
	// an error page (nothing is known to redirect to); anything else goes
	// back to the client as invalid_request.
	get := func(q url.Values) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/authorize?"+q.Encode(), nil)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	authz := url.Values{"response_type": {"code"}, "client_id": {"app"}, "state": {"st"}}
	for _, field := range []string{"client_id", "redirect_uri"} {
		rec := get(with(authz, field, over(field)))
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" ||
			!strings.Contains(rec.Body.String(), field) {
			t.Errorf("/authorize with oversize %s: %d Location=%q", field, rec.Code, rec.Header().Get("Location"))
		}
	}
	for _, field := range []string{"scope", "state", "tenant_id", "code_challenge", "nonce", "response_type"} {
		rec := get(with(authz, field, over(field)))
		loc, _ := url.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusFound || loc == nil || loc.Query().Get("error") != "invalid_request" ||
			!strings.Contains(loc.Query().Get("error_description"), field) {
			t.Errorf("/authorize with oversize %s: %d Location=%q, want a redirect with invalid_request", field, rec.Code, rec.Header().Get("Location"))
		}
	}
}

// A flood of failed password grants with huge usernames (and tenants) from
// many addresses must not pile up in memory (the brute-force limiter once
// kept every username whole as a key: 600 such grants took 36 MB).
func TestFailedGrantFloodMemory(t *testing.T) {
	s, f := newMemServer(t)
	f.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "app", SecretHash: fsm.HashOf("sec"),
		GrantTypes: []string{"password"}, Scopes: []string{"read"}}}))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 600; i++ {
		name := fmt.Sprintf("%06d", i) + strings.Repeat("u", 60<<10)
		form := url.Values{"grant_type": {"password"}, "username": {name}, "password": {"wrong"}}
		if i%5 == 0 {
			form.Set("tenant_id", fmt.Sprintf("%06d", i)+strings.Repeat("t", 2<<10))
		}
		rec := flPost(s, "/token", fmt.Sprintf("198.51.100.%d:4000", i%120), form, "app", "sec")
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusTooManyRequests {
			t.Fatalf("grant %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap %d KiB before, %d KiB after (%+d KiB)", before.HeapAlloc>>10, after.HeapAlloc>>10, growth>>10)
	if growth > 10<<20 {
		t.Errorf("600 failed grants with 60 KiB usernames grew the heap by %d MiB, want < 10 MiB", growth>>20)
	}
	runtime.KeepAlive(s)
}
