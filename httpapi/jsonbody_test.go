package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// tokenResponse is the specification of appendTokenResponse: the RFC 6749
// §5.1 success body plus the Martini guide's token_issued_counter and
// last_token_issued_date, as encoding/json writes it.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	IssuedCount  uint64 `json:"token_issued_counter"`
	LastIssued   string `json:"last_token_issued_date"`
}

// encodeJSON is what writeJSON sends for v.
func encodeJSON(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// awkward are strings that need escaping or are not ASCII, next to the
// plain ones the fast path takes.
var awkward = []string{
	"", "read", "openid profile", `a"b`, `back\slash`, "<script>&amp;", "a<b", "a>b", "a&b", "tab\there", "nl\n", "\x00\x1f\x7f",
	"naïve", "日本", "\u2028\u2029", "bad\xffutf8", "tkda-AbC~-09",
}

func TestAppendTokenResponseMatchesEncodingJSON(t *testing.T) {
	issued := time.Date(2026, 11, 30, 14, 5, 6, 789, time.FixedZone("x", 3600))
	for _, s := range awkward {
		for i, refresh := range []string{"", "tkdr-" + s} {
			idToken := ""
			if i == 1 {
				idToken = "eyJ." + s
			}
			want := encodeJSON(t, tokenResponse{AccessToken: "tkda-" + s, TokenType: "bearer", ExpiresIn: 1800,
				RefreshToken: refresh, IDToken: idToken, Scope: s, IssuedCount: 1<<63 + 5, LastIssued: issued.UTC().Format(time.RFC3339)})
			got := appendTokenResponse([]byte("junk"), "tkda-"+s, refresh, idToken, s, 1800, 1<<63+5, issued)
			if !bytes.Equal(got[4:], want) || string(got[:4]) != "junk" {
				t.Errorf("scope %q refresh %q:\n got %s\nwant %s", s, refresh, got, want)
			}
		}
	}
}

func TestIntrospectionAppendJSONMatchesEncodingJSON(t *testing.T) {
	cases := []introspection{{}, {Active: false}, {Active: true, Exp: -1, Iat: 1 << 40}}
	for _, s := range awkward {
		cases = append(cases, introspection{Active: true, Scope: s, ClientID: s, Username: s, Subject: s,
			Tenant: s, TokenType: s, Exp: 1764511506, Iat: 1764509706, Issuer: s})
	}
	for _, c := range cases {
		want := encodeJSON(t, c)
		if got := c.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("%+v:\n got %s\nwant %s", c, got, want)
		}
	}
}

func TestNewSecretShape(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range []string{prefixAccess, prefixRefresh, prefixCode, prefixSecret, "", "a-much-longer-prefix-"} {
		s := newSecret(p)
		body, ok := strings.CutPrefix(s, p)
		if !ok || len(body) != 43 || seen[s] {
			t.Fatalf("newSecret(%q) = %q", p, s)
		}
		seen[s] = true
		for _, c := range body {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~", c) {
				t.Fatalf("newSecret(%q) = %q: %q outside the alphabet", p, s, c)
			}
		}
	}
}

// TestTokenResponseHeaders checks the hand-written answer's headers and
// that its body parses, through the whole handler.
func TestTokenResponseHeaders(t *testing.T) {
	s, _ := newCCServer(t)
	for _, path := range []string{"/token", "/oauth/token"} {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader("grant_type=client_credentials"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		r.SetBasicAuth("cc", "cc-secret")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		h := w.Header()
		if h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Errorf("%s: headers %v", path, h)
		}
		var tr tokenResponse
		if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil || !strings.HasPrefix(tr.AccessToken, prefixAccess) ||
			tr.TokenType != "bearer" || tr.Scope != "read write" || tr.IssuedCount == 0 {
			t.Errorf("%s: body %s (%v)", path, w.Body, err)
		}
	}
}

// TestPostFastPathKeepsRouting checks that what skips the router answers
// as the router did: wrong methods and near-miss paths still get the
// router's 405 and 404, and a query string still goes through ParseForm.
func TestPostFastPathKeepsRouting(t *testing.T) {
	s, _ := newCCServer(t)
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodGet, "/token", "", http.StatusMethodNotAllowed},
		{http.MethodPut, "/oauth/introspect", "", http.StatusMethodNotAllowed},
		{http.MethodPost, "/token/", "grant_type=client_credentials", http.StatusNotFound},
		{http.MethodPost, "/token?x=%zz", "grant_type=client_credentials", http.StatusBadRequest},
		{http.MethodPost, "/token?x=1", "grant_type=client_credentials", http.StatusOK},
		{http.MethodPost, "/token", "grant_type=client_credentials&grant_type=password", http.StatusBadRequest},
		{http.MethodPost, "/token", "grant_type=client_credentials;x", http.StatusBadRequest},
	} {
		r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("cc", "cc-secret")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s %s %q: %d %s, want %d", c.method, c.path, c.body, w.Code, w.Body, c.want)
		}
	}
}

// newCCServer is newMemServer holding one confidential client "cc"
// (secret "cc-secret", scopes read and write, client_credentials).
func newCCServer(t *testing.T) (*Server, *fsm.FSM) {
	t.Helper()
	s, f := newMemServer(t)
	if res := f.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "cc", SecretHash: fsm.HashOf("cc-secret"),
		Scopes: []string{"read", "write"}, GrantTypes: []string{"client_credentials"}}})); res.Outcome != fsm.OK {
		t.Fatal(res.Err())
	}
	return s, f
}
