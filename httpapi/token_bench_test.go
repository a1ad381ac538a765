package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// The handler benchmarks measure what tokend spends on a request between
// net/http and consensus: form parsing, client authentication, minting,
// command encoding and the JSON answer. Consensus is replaced by
// countingReplicator and the response by discardWriter, so neither's cost
// is in the numbers (BenchmarkApplyIssue in fsm measures the apply).

// countingReplicator answers every command OK without applying it.
type countingReplicator struct{ n atomic.Uint64 }

func (c *countingReplicator) Apply(_ context.Context, cmd []byte) (fsm.Result, error) {
	if _, err := fsm.Decode(cmd); err != nil {
		return fsm.Result{Outcome: fsm.BadCommand}, nil
	}
	n := c.n.Add(1)
	return fsm.Result{Outcome: fsm.OK, Index: n, IssuedCount: n}, nil
}

func (*countingReplicator) ReadReady() error { return nil }

func (*countingReplicator) BeginRead() (int64, error) { return 0, nil }

func (*countingReplicator) FinishRead(context.Context, int64, uint64) error { return nil }

// discardWriter is a ResponseWriter that keeps the status and drops the
// body, reused across iterations.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }
func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = http.StatusOK, 0
}

// benchHandlerServer returns a server whose writes go to a
// countingReplicator, its FSM holding one confidential client "bench"
// with secret "bench-secret" and one access token of that client.
func benchHandlerServer(b *testing.B) (s *Server, token string) {
	b.Helper()
	f := fsm.New()
	f.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "bench", Name: "bench",
		SecretHash: fsm.HashOf("bench-secret"), Scopes: []string{"read", "write"},
		GrantTypes: []string{"client_credentials"}}}))
	token = newSecret(prefixAccess)
	f.Apply(2, fsm.Encode(&fsm.IssueGrant{ClientID: "bench", Scope: "read", IssuedAt: time.Now().UnixNano(),
		Access: fsm.TokenSpec{Hash: fsm.HashOf(token), ExpiresAt: time.Now().Add(time.Hour).UnixNano()}}))
	s, err := New(Config{FSM: f, Replicator: &countingReplicator{}, Issuer: "http://tokend.test"})
	if err != nil {
		b.Fatal(err)
	}
	return s, token
}

func benchForm(b *testing.B, s *Server, path, body string) {
	b.Helper()
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("bench", "bench-secret")
		w.reset()
		s.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkTokenClientCredentials is POST /token with client_credentials,
// exactly what tokend-bench issue-cc sends.
func BenchmarkTokenClientCredentials(b *testing.B) {
	s, _ := benchHandlerServer(b)
	benchForm(b, s, "/token", "grant_type=client_credentials&scope=read")
}

// BenchmarkIntrospectHandler is POST /introspect of a live token.
func BenchmarkIntrospectHandler(b *testing.B) {
	s, tok := benchHandlerServer(b)
	benchForm(b, s, "/introspect", "token="+tok)
}
