package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/keys"
)

// JWT access tokens cost one signature per issue (ES256 by default, through
// the real keys.Manager) and nothing extra per validation: the JWT is
// looked up by its hash like an opaque token. Compare with
// BenchmarkTokenClientCredentials and BenchmarkValidateHandler.

// benchJWTServer is benchHandlerServer with the client registered for JWT
// access tokens and a keys.Manager over the same FSM (its first signature
// writes the key set straight into the FSM) as the Signer.
func benchJWTServer(b *testing.B, alg string) *Server {
	b.Helper()
	s, _ := benchHandlerServer(b)
	f := s.fsm
	f.Apply(3, fsm.Encode(&fsm.PutClient{Client: fsm.Client{ID: "bench", Name: "bench",
		SecretHash: fsm.HashOf("bench-secret"), Scopes: []string{"read", "write"},
		GrantTypes: []string{"client_credentials"}, AccessTokenFormat: formatJWT}, KeepSecret: true}))
	sealer, err := keys.NewSealer([]byte("bench-sealing-secret-0123456789ab"))
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	idx := uint64(10)
	apply := func(_ context.Context, cmd []byte) (fsm.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		idx++
		return f.Apply(idx, cmd), nil
	}
	m, err := keys.New(keys.Config{FSM: f, Apply: apply, Sealer: sealer, Alg: alg})
	if err != nil {
		b.Fatal(err)
	}
	s.cfg.Signer = m
	return s
}

func BenchmarkTokenClientCredentialsJWT(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			s := benchJWTServer(b, alg)
			benchForm(b, s, "/token", "grant_type=client_credentials&scope=read")
		})
	}
}

// BenchmarkValidateHandlerJWT is BenchmarkValidateHandler with a JWT
// access token: the same path, a longer string to hash.
func BenchmarkValidateHandlerJWT(b *testing.B) {
	s := benchJWTServer(b, "ES256")
	t, err := s.mintFor(context.Background(), &fsm.Client{ID: "bench", AccessTokenFormat: formatJWT}, holder{scope: "read"}, false)
	if err != nil || strings.Count(t.access, ".") != 2 {
		b.Fatalf("mint: %v", err)
	}
	s.fsm.Apply(100, fsm.Encode(&fsm.IssueGrant{ClientID: "bench", Scope: "read", IssuedAt: 1, Access: t.accessSpec}))
	req := httptest.NewRequest(http.MethodGet, "/validate", nil)
	req.Header.Set("Authorization", "Bearer "+t.access)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
