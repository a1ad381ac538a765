package cluster

import (
	"math/rand/v2"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// fakeTimer records what a leaseTable asks of its one timer.
type fakeTimer struct{ at int64 }

func (f *fakeTimer) schedule(at int64) { f.at = at }

func newTestTable(writesAt int64) (*leaseTable, *fakeTimer) {
	ft := &fakeTimer{}
	t := newLeaseTable(3, writesAt, ft.schedule)
	t.setReady(10)
	return t, ft
}

func released(w *visWaiter) bool {
	if w == nil {
		return true
	}
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func TestLeaseGrantDecisions(t *testing.T) {
	cases := []struct {
		name      string
		ready     bool
		applied   uint64
		term      uint64
		confirmed bool
		want      string // "" for granted
	}{
		{"granted", true, 10, 3, true, ""},
		{"granted from an older term's view", true, 12, 2, true, ""},
		{"not ready", false, 10, 3, true, "leader not ready"},
		{"not confirmed", true, 10, 3, false, "leadership not confirmed"},
		{"newer term", true, 10, 4, true, "stale leader"},
		{"behind the floor", true, 9, 3, true, "behind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newLeaseTable(3, 0, nil)
			if c.ready {
				tb.setReady(10)
			}
			g := tb.report(5*ms, "b", c.applied, c.term, c.confirmed)
			if g.granted != (c.want == "") || g.reason != c.want {
				t.Fatalf("report = %+v, want reason %q", g, c.want)
			}
			holders := 0
			if c.want == "" {
				holders = 1
			}
			if got := tb.holdersAt(5*ms + int64(leaseLength) - 1); got != holders {
				t.Errorf("holders just before expiry = %d, want %d", got, holders)
			}
			if got := tb.holdersAt(5*ms + int64(leaseLength)); got != 0 {
				t.Errorf("holders at expiry = %d, want 0", got)
			}
		})
	}
}

func TestLeaseOfficeWait(t *testing.T) {
	tb, ft := newTestTable(100 * ms)
	w := tb.await(50*ms, 11)
	if released(w) {
		t.Fatal("acknowledged during the office wait")
	}
	if ft.at != 100*ms {
		t.Fatalf("timer asked for %d, want the end of the office wait", ft.at)
	}
	tb.expire(100 * ms)
	if !released(w) {
		t.Fatal("not acknowledged after the office wait with no holders")
	}
	if f := tb.floorIndex(); f != 11 {
		t.Errorf("floor = %d, want 11", f)
	}
}

func TestLeaseReportReleasesPrefix(t *testing.T) {
	tb, _ := newTestTable(0)
	tb.report(1*ms, "b", 10, 3, true)
	tb.report(1*ms, "c", 10, 3, true)
	ws := map[uint64]*visWaiter{}
	for _, i := range []uint64{13, 11, 12} {
		ws[i] = tb.await(2*ms, i)
		if released(ws[i]) {
			t.Fatalf("index %d acknowledged before any holder applied it", i)
		}
	}
	tb.report(3*ms, "b", 13, 3, true)
	for i, w := range ws {
		if released(w) {
			t.Fatalf("index %d acknowledged while c has applied only 10", i)
		}
	}
	tb.report(3*ms, "c", 12, 3, true)
	if !released(ws[11]) || !released(ws[12]) || released(ws[13]) {
		t.Fatalf("after c applied 12: released 11=%v 12=%v 13=%v, want true true false", released(ws[11]), released(ws[12]), released(ws[13]))
	}
	if f := tb.floorIndex(); f != 12 {
		t.Errorf("floor = %d, want 12", f)
	}
	// A holder below the floor is refused and, once its lease ran out,
	// no longer holds anything back.
	if g := tb.report(4*ms, "d", 11, 3, true); g.granted {
		t.Fatal("granted a lease below the floor")
	}
}

func TestLeaseExpiryReleases(t *testing.T) {
	tb, ft := newTestTable(0)
	tb.report(0, "b", 10, 3, true) // expires at leaseLength
	tb.report(500*ms, "c", 10, 3, true)
	w := tb.await(600*ms, 11)
	if released(w) {
		t.Fatal("acknowledged with two holders behind")
	}
	if ft.at != int64(leaseLength) {
		t.Fatalf("timer asked for %d, want b's expiry %d", ft.at, int64(leaseLength))
	}
	tb.report(700*ms, "c", 11, 3, true) // c catches up; b went silent
	if released(w) {
		t.Fatal("acknowledged while b's lease is unexpired")
	}
	tb.expire(int64(leaseLength))
	if !released(w) {
		t.Fatal("not acknowledged once the silent holder's lease ran out")
	}
	// b reporting behind now is refused: it must catch up to the floor.
	if g := tb.report(int64(leaseLength)+ms, "b", 10, 3, true); g.granted || g.reason != "behind" {
		t.Fatalf("report = %+v, want refused as behind", g)
	}
}

func TestLeaseRestartedHolderHoldsBack(t *testing.T) {
	tb, ft := newTestTable(0)
	tb.report(0, "b", 20, 3, true)
	// b restarts and reports a lower applied index while the leader still
	// counts its old lease: writes above 15 wait for the old lease.
	tb.report(100*ms, "b", 15, 3, true)
	if w := tb.await(110*ms, 16); released(w) {
		t.Fatal("acknowledged 16 after the holder reported 15")
	} else if want := 100*ms + int64(leaseLength); ft.at != want {
		t.Fatalf("timer asked for %d, want the renewed lease's end %d", ft.at, want)
	}
}

func TestLeaseFloorNeverDecreases(t *testing.T) {
	tb := newLeaseTable(3, 0, nil)
	if w := tb.await(0, 40); w != nil {
		t.Fatal("no holders, yet not acknowledged")
	}
	tb.setReady(30) // a barrier applied after a later write was acknowledged
	if f := tb.floorIndex(); f != 40 {
		t.Fatalf("floor = %d after a lower barrier, want 40", f)
	}
	if g := tb.report(0, "b", 35, 3, true); g.granted {
		t.Fatal("granted a lease below an acknowledged index")
	}
}

func TestLeaseAbandonedWaiter(t *testing.T) {
	tb, _ := newTestTable(0)
	tb.report(0, "b", 10, 3, true)
	w := tb.await(ms, 11)
	tb.abandon(w)
	tb.report(2*ms, "b", 11, 3, true) // must not close (or panic on) it
	if released(w) {
		t.Fatal("an abandoned waiter was closed")
	}
	if f := tb.floorIndex(); f != 11 {
		t.Errorf("floor = %d, want 11", f)
	}
}

func TestHolderStopsBeforeLeader(t *testing.T) {
	sent := 7 * ms
	if got, want := holderUntil(sent, leaseLength.Milliseconds()), sent+int64(leaseLength-holderMargin); got != want {
		t.Fatalf("holderUntil = %d, want %d", got, want)
	}
	var l holderLease
	l.extend(50)
	l.extend(40) // an older renewal answered late never shortens it
	if !l.valid(49) || l.valid(50) {
		t.Fatal("lease validity at its end is wrong")
	}
	l.clear()
	if l.valid(0) {
		t.Fatal("cleared lease still valid")
	}
}

// simHolder is a follower in the randomized driver: its own clock runs at
// rate (within the drift holderMargin allows) from offset.
type simHolder struct {
	id       string
	rate     float64
	offset   int64
	applied  uint64
	lease    holderLease
	leaderEx int64 // leader's expiry (real time) of the grant the lease came from

	// The one report in flight: sent on the holder's clock, arriving at
	// the leader at arrive, the answer back at answer (real time).
	inFlight       bool
	sent           int64
	reported       uint64
	arrive, answer int64
	delivered      bool
	grant          leaseGrant
	grantAt        int64
	epoch, repEpoc int // restarts: an answer to an older process is dropped
}

func (h *simHolder) clock(real int64) int64 { return h.offset + int64(float64(real)*h.rate) }

// TestLeaseInvariantsRandom drives one leaseTable and three holders
// through thousands of random interleavings of writes, applies, reports
// (with delays), answers, restarts, lost leadership confirmation, timer
// firings and time passing, checking after every step that the floor never
// decreased, that every holder serving reads has applied the floor (so
// every acknowledged index), and that no holder serves past the leader's
// expiry for it; and at the end that every write was acknowledged once the
// holders went silent for a lease.
func TestLeaseInvariantsRandom(t *testing.T) {
	seeds := 3000
	if testing.Short() {
		seeds = 300
	}
	for seed := range seeds {
		runLeaseSim(t, uint64(seed))
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
}

func runLeaseSim(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x1ea5e))
	var now int64
	timer := &fakeTimer{}
	writesAt := int64(rng.IntN(3)) * int64(officeWait) / 2
	tb := newLeaseTable(5, writesAt, timer.schedule)
	commit := uint64(100)
	tb.setReady(commit)
	holders := make([]*simHolder, 3)
	for i := range holders {
		holders[i] = &simHolder{
			id:      string(rune('a' + i)),
			rate:    0.92 + 0.16*rng.Float64(),
			offset:  rng.Int64N(int64(time.Hour)),
			applied: commit - uint64(rng.IntN(3)),
		}
	}
	type pending struct {
		w     *visWaiter
		index uint64
	}
	var waiters []pending
	var acked, lastFloor uint64
	confirmed := true

	check := func(what string) {
		t.Helper()
		f := tb.floorIndex()
		if f < lastFloor {
			t.Fatalf("seed %d %s: floor decreased from %d to %d", seed, what, lastFloor, f)
		}
		lastFloor = f
		kept := waiters[:0]
		for _, p := range waiters {
			if released(p.w) {
				acked = max(acked, p.index)
			} else {
				kept = append(kept, p)
			}
		}
		waiters = kept
		if acked > f {
			t.Fatalf("seed %d %s: acknowledged %d above the floor %d", seed, what, acked, f)
		}
		// The floor a leader publishes (visible.go): none during the
		// office wait, the floor after it; so every serving holder below
		// has applied it.
		if pf := tb.publishedFloor(now); pf > f || (now < writesAt && pf != 0) || (now >= writesAt && pf != f) {
			t.Fatalf("seed %d %s at %d: published floor %d (floor %d, writes from %d)", seed, what, now, pf, f, writesAt)
		}
		for _, h := range holders {
			if !h.lease.valid(h.clock(now)) {
				continue
			}
			if h.applied < f {
				t.Fatalf("seed %d %s at %d: holder %s serves with applied %d below the floor %d (acknowledged %d)", seed, what, now, h.id, h.applied, f, acked)
			}
			if now >= h.leaderEx {
				t.Fatalf("seed %d %s: holder %s serves at %d, past the leader's expiry %d", seed, what, h.id, now, h.leaderEx)
			}
		}
	}

	// advance moves time to `to`, handling report arrivals, answers and
	// the timer in time order.
	advance := func(to int64) {
		for {
			next, kind, who := to, 0, (*simHolder)(nil)
			if timer.at > now && timer.at < next {
				next, kind = timer.at, 1
			}
			for _, h := range holders {
				if h.inFlight && !h.delivered && h.arrive < next {
					next, kind, who = h.arrive, 2, h
				}
				if h.inFlight && h.delivered && h.answer < next {
					next, kind, who = h.answer, 3, h
				}
			}
			now = max(now, next)
			switch kind {
			case 0:
				check("advance")
				return
			case 1:
				timer.at = 0
				tb.expire(now)
			case 2:
				who.delivered = true
				who.grant = tb.report(now, who.id, who.reported, 5, confirmed)
				who.grantAt = now
			case 3:
				who.inFlight = false
				if who.grant.granted && who.repEpoc == who.epoch {
					until := holderUntil(who.sent, leaseLength.Milliseconds())
					// Where the holder's lease ends in real time must be
					// before the leader's end for this grant.
					realEnd := int64(float64(until-who.offset) / who.rate)
					if leaderEnd := who.grantAt + int64(leaseLength); realEnd > leaderEnd {
						t.Fatalf("seed %d: holder %s lease ends at %d, after the leader's %d", seed, who.id, realEnd, leaderEnd)
					}
					if until > who.lease.until.Load() {
						who.leaderEx = who.grantAt + int64(leaseLength)
					}
					who.lease.extend(until)
				}
			}
			check("event")
		}
	}

	for step := 0; step < 200; step++ {
		switch r := rng.IntN(100); {
		case r < 25: // a write commits and waits to be acknowledged
			commit++
			if w := tb.await(now, commit); w == nil {
				acked = max(acked, commit)
			} else {
				waiters = append(waiters, pending{w, commit})
			}
		case r < 45: // a holder applies some of the log
			h := holders[rng.IntN(len(holders))]
			if h.applied < commit {
				h.applied += 1 + uint64(rng.Int64N(int64(commit-h.applied)))
			}
		case r < 70: // a holder reports
			h := holders[rng.IntN(len(holders))]
			if !h.inFlight {
				h.inFlight, h.delivered = true, false
				h.sent, h.reported, h.repEpoc = h.clock(now), h.applied, h.epoch
				h.arrive = now + rng.Int64N(30*ms)
				h.answer = h.arrive + rng.Int64N(30*ms)
			}
		case r < 72: // a holder restarts behind, without its lease
			h := holders[rng.IntN(len(holders))]
			h.epoch++
			h.lease.clear()
			h.applied -= uint64(rng.IntN(int(min(h.applied, 5)) + 1))
		case r < 75:
			confirmed = !confirmed
		case r < 80: // a waiting writer gives up
			if len(waiters) > 0 {
				i := rng.IntN(len(waiters))
				tb.abandon(waiters[i].w)
				waiters = append(waiters[:i], waiters[i+1:]...)
			}
		default:
			advance(now + rng.Int64N(int64(leaseLength)/3))
		}
		check("step")
	}
	// The holders go silent: every write is acknowledged within a lease.
	advance(max(now, writesAt) + int64(leaseLength) + 100*ms)
	for _, p := range waiters {
		if !released(p.w) {
			t.Fatalf("seed %d: index %d still waiting after the holders went silent for a lease (floor %d)", seed, p.index, tb.floorIndex())
		}
	}
}

// A holder that keeps reporting at the floor but never applies (a stuck
// state machine under a live lease loop) must not hold writes back for
// ever: once the lowest waiting write has waited lagLimit, its renewals
// are refused and the write is released when its last lease runs out.
func TestLeaseStuckHolderIsNotRenewed(t *testing.T) {
	tb, _ := newTestTable(0)
	tb.report(0, "b", 10, 3, true)
	tb.report(0, "c", 10, 3, true)
	w := tb.await(10*ms, 11)
	tb.report(20*ms, "c", 11, 3, true) // c applies; b is stuck at 10
	now := 20 * ms
	var last int64 // when b was last granted
	for ; now < 10*int64(leaseLength); now += int64(leaseRenew) {
		if g := tb.report(now, "b", 10, 3, true); g.granted {
			last = now
		} else if g.reason != "lagging" {
			t.Fatalf("b refused at %dms for %q, want lagging", now/ms, g.reason)
		}
		tb.report(now, "c", 11, 3, true)
		tb.expire(now)
		if released(w) {
			break
		}
	}
	if !released(w) {
		t.Fatal("a stuck holder held the write back for ten lease lengths")
	}
	if last < 10*ms+int64(lagLimit)-int64(leaseRenew) || last >= 10*ms+int64(lagLimit) {
		t.Fatalf("b last renewed at %dms, want just before the write had waited lagLimit (%v)", last/ms, lagLimit)
	}
	if now < last+int64(leaseLength) {
		t.Fatalf("released at %dms, before b's last lease (granted %dms) ran out", now/ms, last/ms)
	}
	// A healthy holder that has applied the waiting writes is still renewed.
	if g := tb.report(now, "c", 11, 3, true); !g.granted {
		t.Fatalf("c refused: %q", g.reason)
	}
}
