package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
)

// BenchmarkCodeRedeemIDToken is the cost of an ID token on the token
// endpoint: a code redemption (grant written straight into the FSM, then
// POST /token through the whole handler with a real in-memory apply), of
// a plain OAuth grant and of an OpenID sign-in, whose answer carries an
// ES256 ID token signed once. The difference is the signing.
func BenchmarkCodeRedeemIDToken(b *testing.B) {
	for _, scope := range []string{"read", "openid read"} {
		b.Run(strings.ReplaceAll(scope, " ", "+"), func(b *testing.B) {
			state := fsm.New()
			cfg := httpapi.Config{FSM: state, Replicator: httpapi.NewMemReplicator(state), Issuer: azIssuer,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			withKeys(b, nil, nil)(&cfg)
			s, err := httpapi.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			state.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "rp", SecretHash: fsm.HashOf("tkds-x"),
				Scopes: []string{"read"}, RedirectURIs: []string{"https://rp.example/cb"}, GrantTypes: []string{"authorization_code"}}}))
			state.Apply(2, fsm.Encode(&fsm.PutUser{Create: true, User: fsm.User{Tenant: "default", Username: "alice", PasswordHash: "x"}}))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				code := "tkdc-bench-" + strconv.Itoa(i)
				now := time.Now()
				if res := state.Apply(uint64(3+i), fsm.Encode(&fsm.IssueGrant{ClientID: "rp", Tenant: "default", Username: "alice",
					Scope: scope, IssuedAt: now.UnixNano(), Nonce: "n", AuthTime: now.Unix(), RedirectURI: "https://rp.example/cb",
					Code: fsm.TokenSpec{Hash: fsm.HashOf(code), ExpiresAt: now.Add(time.Minute).UnixNano()}})); res.Outcome != fsm.OK {
					b.Fatal(res.Err())
				}
				req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader("grant_type=authorization_code&code="+code))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("rp", "tkds-x")
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || (scope != "read") != strings.Contains(rec.Body.String(), `"id_token"`) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
