package fsm

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The big benchmarks run against 500,000 grants, each with an access and a
// refresh token: 1,000,000 live tokens, issued through Apply the way the
// cluster would. The state is built once per test binary run.
const (
	benchGrants  = 500_000
	benchClients = 200
	benchTenants = 10
	benchUsers   = 20_000
)

var benchScopes = []string{"openid profile", "openid profile email", "read", "read write", "api:read api:write"}

type bigState struct {
	f     *FSM
	raws  []string // every raw token, access and refresh
	now   int64
	build time.Duration
}

var big struct {
	once sync.Once
	s    *bigState
}

// rawToken makes an opaque token the shape the server issues: a type
// prefix and 256 random bits, base64url.
func rawToken(rng *mrand.ChaCha8, prefix string) string {
	var b [32]byte
	rng.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// buildState issues grants grants into a new FSM through Apply. keepRaw
// keeps the raw token strings (for lookups); without it they are garbage
// once hashed.
func buildState(grants int, keepRaw bool) *bigState {
	start := time.Now()
	s := &bigState{f: New(), now: t0 + minute}
	if keepRaw {
		s.raws = make([]string, 0, 2*grants)
	}
	idx := uint64(0)
	apply := func(c Command) {
		idx++
		if r := s.f.Apply(idx, Encode(c)); r.Outcome != OK {
			panic(fmt.Sprintf("%T: %v", c, r.Err()))
		}
	}
	for i := 0; i < benchClients; i++ {
		apply(&PutClient{Client: Client{ID: fmt.Sprintf("client-%03d", i), Name: "bench",
			SecretHash: HashOf(fmt.Sprint("secret", i)), GrantTypes: []string{"password", "refresh_token"},
			RedirectURIs: []string{"https://app.example/cb"}, CreatedAt: t0}, Create: true})
	}
	rng := mrand.NewChaCha8([32]byte{1})
	pick := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < grants; i++ {
		access, refresh := rawToken(rng, "tka_"), rawToken(rng, "tkr_")
		c := &IssueGrant{
			ClientID: fmt.Sprintf("client-%03d", pick.IntN(benchClients)),
			Scope:    benchScopes[pick.IntN(len(benchScopes))],
			IssuedAt: t0,
			Access:   TokenSpec{Hash: HashOf(access), ExpiresAt: t0 + accessL},
			Refresh:  TokenSpec{Hash: HashOf(refresh), ExpiresAt: t0 + refresL},
		}
		if pick.IntN(5) != 0 { // 80% user grants, 20% client credentials
			c.Tenant = fmt.Sprintf("tenant-%d", pick.IntN(benchTenants))
			c.Username = fmt.Sprintf("user-%05d", pick.IntN(benchUsers))
		}
		apply(c)
		if keepRaw {
			s.raws = append(s.raws, access, refresh)
		}
	}
	s.build = time.Since(start)
	return s
}

func bigFSM(b *testing.B) *bigState {
	big.once.Do(func() {
		big.s = buildState(benchGrants, true)
		b.Logf("built %d grants, %d tokens in %v", benchGrants, big.s.f.LiveTokens(), big.s.build)
	})
	if big.s.f.LiveTokens() != 2*benchGrants {
		b.Fatalf("LiveTokens %d", big.s.f.LiveTokens())
	}
	return big.s
}

// BenchmarkLookup validates raw tokens the way the HTTP layer does: hash
// the presented string, then look it up.
func BenchmarkLookup(b *testing.B) {
	s := bigFSM(b)
	n := len(s.raws)
	b.Run("hash+lookup", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i += 7919
			if i >= n {
				i -= n
			}
			if _, ok := s.f.Lookup(HashOf(s.raws[i]), s.now); !ok {
				b.Fatal("miss")
			}
		}
	})
	hashes := make([]Hash, n)
	for i, r := range s.raws {
		hashes[i] = HashOf(r)
	}
	b.Run("lookup-prehashed", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i += 7919
			if i >= n {
				i -= n
			}
			if _, ok := s.f.Lookup(hashes[i], s.now); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("hash+lookup-miss", func(b *testing.B) {
		b.ReportAllocs()
		raw := "tka_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
		for b.Loop() {
			if _, ok := s.f.Lookup(HashOf(raw), s.now); ok {
				b.Fatal("hit")
			}
		}
	})
}

func BenchmarkLookupParallel(b *testing.B) {
	s := bigFSM(b)
	n := len(s.raws)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1)*104729) % n
		for pb.Next() {
			i += 7919
			if i >= n {
				i -= n
			}
			if _, ok := s.f.Lookup(HashOf(s.raws[i]), s.now); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

// BenchmarkApplyIssue measures Apply of an IssueGrant with an access and a
// refresh token (decode included; encoding and hashing happen outside the
// timer, as they do on the node that received the request).
func BenchmarkApplyIssue(b *testing.B) {
	f := New()
	f.Apply(1, Encode(&PutClient{Client: Client{ID: "client-000"}, Create: true}))
	idx := uint64(1)
	rng := mrand.NewChaCha8([32]byte{2})
	const batch = 4096
	entries := make([][]byte, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		entries = entries[:0]
		for j := 0; j < batch && done+j < b.N; j++ {
			var a, r Hash
			rng.Read(a[:])
			rng.Read(r[:])
			entries = append(entries, Encode(&IssueGrant{ClientID: "client-000", Tenant: "tenant-1",
				Username: fmt.Sprintf("user-%05d", j), Scope: "openid profile", IssuedAt: t0,
				Access: TokenSpec{a, t0 + accessL}, Refresh: TokenSpec{r, t0 + refresL}}))
		}
		b.StartTimer()
		for _, e := range entries {
			idx++
			if res := f.Apply(idx, e); res.Outcome != OK {
				b.Fatal(res.Err())
			}
		}
		done += len(entries)
	}
}

func BenchmarkSnapshot(b *testing.B) {
	s := bigFSM(b)
	// Snapshot is the pause Apply sees; WriteTo runs beside Apply.
	var pause, write time.Duration
	var size int64
	for b.Loop() {
		start := time.Now()
		snap := s.f.Snapshot()
		pause += time.Since(start)
		start = time.Now()
		n, err := snap.WriteTo(io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		write += time.Since(start)
		size = n
	}
	b.ReportMetric(pause.Seconds()/float64(b.N), "pause-s/op")
	b.ReportMetric(write.Seconds()/float64(b.N), "write-s/op")
	b.ReportMetric(float64(size), "bytes")
	b.ReportMetric(float64(size)/float64(s.f.LiveTokens()), "B/token")
}

func BenchmarkRestore(b *testing.B) {
	s := bigFSM(b)
	var buf bytes.Buffer
	s.f.Snapshot().WriteTo(&buf)
	img := buf.Bytes()
	start := time.Now()
	for b.Loop() {
		g := New()
		if err := g.Restore(bytes.NewReader(img)); err != nil {
			b.Fatal(err)
		}
		if g.LiveTokens() != s.f.LiveTokens() {
			b.Fatal("restored token count differs")
		}
	}
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/op")
}

// BenchmarkHeapPerToken reports the live heap a token costs: the heap
// growth from building a fresh 1M-token state through Apply, divided by its
// live tokens (grants, indexes and interned strings included).
func BenchmarkHeapPerToken(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := buildState(benchGrants, false)
		runtime.GC()
		runtime.ReadMemStats(&after)
		n := s.f.LiveTokens()
		perToken := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
		b.ReportMetric(perToken, "B/token")
		b.ReportMetric(float64(n), "tokens")
		b.ReportMetric(s.build.Seconds(), "build-s")
		runtime.KeepAlive(s)
	}
}
