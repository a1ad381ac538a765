package keys

import (
	"context"
	"testing"
)

// BenchmarkSign is the cost one issued ID token or JWT access token adds:
// one signature with the cached key, claims marshalled.
func BenchmarkSign(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run(alg, func(b *testing.B) {
			m := newBenchManager(b, alg)
			claims := map[string]any{"iss": "https://tokend.example", "sub": "alice", "aud": "app", "exp": 1900000000, "iat": 1800000000, "scope": "openid profile"}
			ctx := context.Background()
			if _, err := m.Sign(ctx, "JWT", claims); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := m.Sign(ctx, "JWT", claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify is one offline check of a token against the set.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run(alg, func(b *testing.B) {
			m := newBenchManager(b, alg)
			tok, err := m.Sign(context.Background(), "at+jwt", map[string]any{"sub": "alice", "scope": "read"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := m.Verify(tok, "at+jwt"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func newBenchManager(b *testing.B, alg string) *Manager {
	b.Helper()
	secret := make([]byte, 32)
	s, err := NewSealer(secret)
	if err != nil {
		b.Fatal(err)
	}
	r := newReplica()
	m, err := New(Config{FSM: r.f, Apply: r.apply, Sealer: s, Now: newClock().now, Alg: alg, Algs: []string{alg}})
	if err != nil {
		b.Fatal(err)
	}
	return m
}
