package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
)

// FuzzOpenIDRequests throws arbitrary queries at /authorize (with the
// OpenID parameters and a sign-in session cookie), /end_session and
// /userinfo. None may panic or answer 5xx: bad input is a page, a
// redirect with an error, or an RFC 6750 refusal.
func FuzzOpenIDRequests(f *testing.F) {
	state := fsm.New()
	cfg := httpapi.Config{FSM: state, Replicator: httpapi.NewMemReplicator(state), Issuer: azIssuer,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	withKeys(f, nil, nil)(&cfg)
	s, err := httpapi.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	state.Apply(1_000_000, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{
		ID: "rp", SecretHash: fsm.HashOf("tkds-x"), Scopes: []string{"read"}, RedirectURIs: []string{"https://rp.example/cb"},
		GrantTypes: []string{"authorization_code", "implicit"}, PostLogoutRedirectURIs: []string{"https://rp.example/bye"},
	}}))
	// A signed-in browser that approved the client: fuzzed requests with
	// this cookie reach the issuing paths and the signer.
	const cookie = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for i, cmd := range []fsm.Command{
		&fsm.PutUser{Create: true, User: fsm.User{Tenant: "default", Username: "alice", PasswordHash: "x", Email: "a@example.com"}},
		&fsm.StartSession{SID: fsm.HashOf(cookie), Tenant: "default", Username: "alice", AuthTime: time.Now().Unix(),
			ExpiresAt: time.Now().Add(time.Hour).UnixNano()},
		&fsm.RememberConsent{Tenant: "default", Username: "alice", ClientID: "rp", Scope: "openid profile email read"},
	} {
		if res := state.Apply(uint64(1_000_001+i), fsm.Encode(cmd)); res.Outcome != fsm.OK {
			f.Fatalf("seed %T: %v", cmd, res.Err())
		}
	}
	for _, q := range []string{
		"response_type=code&client_id=rp&scope=openid+profile&nonce=n&prompt=none",
		"response_type=id_token+token&client_id=rp&scope=openid&nonce=n&max_age=0&login_hint=alice",
		"response_type=code+id_token&client_id=rp&scope=openid&prompt=login+consent&max_age=-1",
		"response_type=token+id_token&client_id=rp&scope=openid&request=x",
		"client_id=rp&post_logout_redirect_uri=https://rp.example/bye&id_token_hint=eyJ.eyJ.sig&state=s",
		"response_type=id_token&client_id=rp&scope=email&prompt=select_account&nonce=%ff",
	} {
		f.Add(q, "tkda-x", cookie)
	}
	f.Fuzz(func(t *testing.T, query, bearer, cookie string) {
		for _, path := range []string{"/authorize", "/end_session", "/userinfo"} {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL = &url.URL{Path: path, RawQuery: query}
			req.Header.Set("Authorization", "Bearer "+strings.ToValidUTF8(bearer, ""))
			req.AddCookie(&http.Cookie{Name: "tokend_session", Value: url.QueryEscape(cookie)})
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s?%s: %d %s", path, query, rec.Code, rec.Body)
			}
		}
	})
}
