package fsm

import (
	"bytes"
	"testing"
)

// checkCounts compares the counters /metrics reads (without walking the
// tables) with the tables themselves.
func checkCounts(t *testing.T, f *FSM, when string) {
	t.Helper()
	if got, want := f.LiveGrants(), len(grantsOf(f)); got != want {
		t.Fatalf("%s: LiveGrants %d, grants table holds %d", when, got, want)
	}
	if got, want := f.ClientCount(), len(f.Clients()); got != want {
		t.Fatalf("%s: ClientCount %d, want %d", when, got, want)
	}
	if got, want := f.UserCount(), len(f.Users()); got != want {
		t.Fatalf("%s: UserCount %d, want %d", when, got, want)
	}
}

// TestMetricCounters: the grant, client and user counts follow every
// command of a random workload and a snapshot restore, and PurgedTokens
// adds up what purges reported.
func TestMetricCounters(t *testing.T) {
	w := newWorkload(7)
	f := New()
	checkCounts(t, f, "empty")
	var purged uint64
	var idx uint64
	maxGrants := 0
	for i, d := range w.entries(4000) {
		idx++
		r := f.Apply(idx, d)
		if c, err := Decode(d); err == nil {
			if _, ok := c.(*Purge); ok {
				purged += r.Count
			}
		}
		if i%50 == 0 {
			checkCounts(t, f, "workload")
		}
		maxGrants = max(maxGrants, f.LiveGrants())
	}
	checkCounts(t, f, "after workload")
	if maxGrants == 0 || f.ClientCount() == 0 || f.UserCount() == 0 {
		t.Fatalf("workload left nothing to count: max grants %d, clients %d, users %d", maxGrants, f.ClientCount(), f.UserCount())
	}
	if purged == 0 || f.PurgedTokens() != purged {
		t.Fatalf("PurgedTokens %d, purges reported %d", f.PurgedTokens(), purged)
	}

	// A restore replaces the counts with the image's.
	g := newRichState(t).e.f
	if err := g.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, g, "after restore")
	if g.LiveGrants() != f.LiveGrants() || g.ClientCount() != f.ClientCount() || g.UserCount() != f.UserCount() {
		t.Fatalf("restored counts %d/%d/%d, want %d/%d/%d", g.LiveGrants(), g.ClientCount(), g.UserCount(),
			f.LiveGrants(), f.ClientCount(), f.UserCount())
	}

	// Purging everything empties the grants.
	idx++
	r := f.Apply(idx, Encode(&Purge{Now: 1 << 62}))
	if f.LiveGrants() != 0 || f.LiveTokens() != 0 || f.PurgedTokens() != purged+r.Count || r.Count == 0 {
		t.Fatalf("after the final purge: %d grants, %d tokens, PurgedTokens %d (want %d)",
			f.LiveGrants(), f.LiveTokens(), f.PurgedTokens(), purged+r.Count)
	}
	checkCounts(t, f, "after final purge")
}
