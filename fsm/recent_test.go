package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// The recent-change table (recent.go): which tokens changed above the
// visibility floor, as seen by reads.

func TestInFlightIssueRevokeAndFloor(t *testing.T) {
	e := newEnv(t)
	setup := e.idx
	// Client and user puts are above floor 0 but touch no token.
	if got := e.f.InFlight(HashOf("nothing")); got != 0 {
		t.Fatalf("unknown token in flight at %d", got)
	}
	p, r := e.issue("a", "c1", "t", "alice", "read", t0)
	if got := e.f.InFlight(p.access); got != r.Index {
		t.Fatalf("issued access token: in flight at %d, want %d", got, r.Index)
	}
	if got := e.f.InFlight(p.refresh); got != r.Index {
		t.Fatalf("issued refresh token: in flight at %d, want %d", got, r.Index)
	}
	if got := e.f.InFlight(HashOf("other")); got != 0 {
		t.Fatalf("untouched token in flight at %d", got)
	}
	e.f.SetVisibleFloor(r.Index)
	if got := e.f.InFlight(p.access); got != 0 {
		t.Fatalf("after the floor passed it: in flight at %d", got)
	}
	if n := e.f.InFlightKeys(); n != 0 {
		t.Fatalf("%d keys held after the floor passed everything", n)
	}
	rv := e.ok(&RevokeToken{Token: p.refresh})
	for _, h := range []Hash{p.access, p.refresh} {
		if got := e.f.InFlight(h); got != rv.Index {
			t.Fatalf("revoked grant's token: in flight at %d, want %d", got, rv.Index)
		}
	}
	// The floor never goes down, and a lower floor prunes nothing newer.
	e.f.SetVisibleFloor(setup)
	if e.f.VisibleFloor() != r.Index {
		t.Fatalf("floor lowered to %d", e.f.VisibleFloor())
	}
	if got := e.f.InFlight(p.access); got != rv.Index {
		t.Fatalf("after a lower floor: in flight at %d, want %d", got, rv.Index)
	}
	e.f.SetVisibleFloor(rv.Index)
	if got := e.f.InFlight(p.access); got != 0 || e.f.InFlightKeys() != 0 {
		t.Fatalf("after the floor reached the revocation: in flight at %d, %d keys", got, e.f.InFlightKeys())
	}
}

// TestInFlightCommands: every command that changes what a lookup of a
// token answers marks that token; the latest change wins.
func TestInFlightCommands(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("r", "c1", "t", "alice", "read", t0)
	e.f.SetVisibleFloor(e.idx)
	next := tokensFor("r2")
	rot := e.rotate(p.refresh, "c1", "", t0+sec, 0, next)
	rr := e.ok(&rot)
	for _, h := range []Hash{p.refresh, next.access, next.refresh} {
		if got := e.f.InFlight(h); got != rr.Index {
			t.Fatalf("rotation: %x in flight at %d, want %d", h[:4], got, rr.Index)
		}
	}
	if got := e.f.InFlight(p.access); got != 0 {
		t.Fatalf("rotation left the old access token alone, yet in flight at %d", got)
	}
	// Revoking the subject cascades to every grant of the user.
	q, _ := e.issue("q", "c2", "t", "alice", "read", t0)
	rs := e.ok(&RevokeSubject{Tenant: "t", Username: "alice"})
	for _, h := range []Hash{p.access, next.access, q.access, q.refresh} {
		if got := e.f.InFlight(h); got != rs.Index {
			t.Fatalf("revoke subject: %x in flight at %d, want %d", h[:4], got, rs.Index)
		}
	}
	// Deleting a client cascades too.
	e.f.SetVisibleFloor(e.idx)
	c, _ := e.issue("c", "c2", "t", "bob", "read", t0)
	dc := e.ok(&DeleteClient{ClientID: "c2"})
	if got := e.f.InFlight(c.access); got != dc.Index {
		t.Fatalf("delete client: in flight at %d, want %d", got, dc.Index)
	}
}

// TestInFlightOverflowCoversAll: beyond recentMax keys one index covers
// every key, so memory stays bounded and nothing is missed.
func TestInFlightOverflowCoversAll(t *testing.T) {
	var r recent
	r.at = 5
	for i := 0; i < recentMax+10; i++ {
		var k key
		k[0], k[1], k[2], k[3] = byte(i), byte(i>>8), byte(i>>16), 1
		r.touch(k)
	}
	if n := r.held.Load(); n != recentMax {
		t.Fatalf("held %d keys, want the cap %d", n, recentMax)
	}
	if got := r.pending(key{9, 9, 9, 9}); got != 5 {
		t.Fatalf("an untouched key during overflow: pending %d, want 5", got)
	}
	r.setFloor(5)
	if got := r.pending(key{9, 9, 9, 9}); got != 0 || r.held.Load() != 0 {
		t.Fatalf("after the floor: pending %d, held %d", got, r.held.Load())
	}
	if r.queue != nil {
		t.Fatalf("queue of cap %d kept after the burst", cap(r.queue))
	}
}

// TestInFlightRestoreCoversAll: a restored snapshot may change any key.
func TestInFlightRestoreCoversAll(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("a", "c1", "t", "alice", "read", t0)
	var buf bytes.Buffer
	s := e.f.Snapshot()
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	s.Release()
	g := New()
	if err := g.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got := g.InFlight(HashOf("any")); got != e.idx {
		t.Fatalf("after restore: any key in flight at %d, want %d", got, e.idx)
	}
	g.SetVisibleFloor(e.idx)
	if got := g.InFlight(p.access); got != 0 {
		t.Fatalf("after the floor reached the snapshot: in flight at %d", got)
	}
}

// TestInFlightRandom drives the table with random touches and floors and
// checks it against a plain map: pending(k) is the latest index touching
// k if that is above the floor, else 0 (or the covering index).
func TestInFlightRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r recent
	model := map[key]uint64{}
	var floor uint64
	keys := make([]key, 50)
	for i := range keys {
		keys[i][0], keys[i][5] = byte(rng.IntN(256)), byte(i)
	}
	for step := 0; step < 20000; step++ {
		switch rng.IntN(4) {
		case 0, 1:
			r.at++
			for j := rng.IntN(4); j >= 0; j-- {
				k := keys[rng.IntN(len(keys))]
				r.touch(k)
				if r.at > floor {
					model[k] = r.at
				}
			}
		case 2:
			if r.at > floor {
				floor += uint64(rng.IntN(int(r.at-floor) + 1))
				r.setFloor(floor)
			}
		case 3:
			k := keys[rng.IntN(len(keys))]
			want := model[k]
			if want <= floor {
				want = 0
			}
			if got := r.pending(k); got != want {
				t.Fatalf("step %d: pending %d, want %d (floor %d)", step, got, want, floor)
			}
		}
	}
}

// TestInFlightSeenImpliesPending is the property reads rely on: a reader
// whose lookup observed a change either finds it in flight or finds the
// floor already at or past it (run with -race).
func TestInFlightSeenImpliesPending(t *testing.T) {
	e := newEnv(t)
	const n = 2000
	names := make([]string, n)
	at := make([]atomic.Uint64, n) // the index each token is issued at
	for i := range names {
		names[i] = fmt.Sprintf("tok%d", i)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the floor chases the applied index
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				e.f.SetVisibleFloor(e.f.AppliedIndex())
			}
		}
	}()
	var bad, seen atomic.Int64
	go func() { // a reader of each token as it appears
		defer wg.Done()
		for i := 0; i < n; i++ {
			h := tokensFor(names[i]).access
			for {
				if _, ok := e.f.Lookup(h, t0); ok {
					seen.Add(1)
					if p := e.f.InFlight(h); p != at[i].Load() && e.f.VisibleFloor() < at[i].Load() {
						bad.Add(1)
					}
					break
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}
	}()
	for i := 0; i < n; i++ {
		at[i].Store(e.idx + 1)
		e.issue(names[i], "c1", "t", "alice", "read", t0)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d lookups saw a change neither in flight nor under the floor", bad.Load(), seen.Load())
	}
}

// BenchmarkApplyIssueInFlight is BenchmarkApplyIssue with the floor
// following the applies every 64 entries, as acknowledgements would: the
// cost of recording each change (two keys per issue) and pruning it.
func BenchmarkApplyIssueInFlight(b *testing.B) {
	f := New()
	f.Apply(1, Encode(&PutClient{Client: Client{ID: "client-000"}, Create: true}))
	idx := uint64(1)
	entries := make([][]byte, 4096)
	for j := range entries {
		a, r := HashOf(fmt.Sprintf("a%d", j)), HashOf(fmt.Sprintf("r%d", j))
		entries[j] = Encode(&IssueGrant{ClientID: "client-000", Tenant: "tenant-1",
			Username: fmt.Sprintf("user-%05d", j), Scope: "openid profile", IssuedAt: t0,
			Access: TokenSpec{a, t0 + accessL}, Refresh: TokenSpec{r, t0 + refresL}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(entries) == 0 && i > 0 {
			b.StopTimer()
			f = New() // the same tokens again
			f.Apply(1, Encode(&PutClient{Client: Client{ID: "client-000"}, Create: true}))
			b.StartTimer()
		}
		idx++
		if res := f.Apply(idx, entries[i%len(entries)]); res.Outcome != OK {
			b.Fatal(res.Err())
		}
		if idx%64 == 0 {
			f.SetVisibleFloor(idx)
		}
	}
	b.StopTimer()
	if n := f.InFlightKeys(); n > 2*64 {
		b.Fatalf("%d keys held with the floor 64 entries behind", n)
	}
}
