package cluster

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tokend/tokend/fsm"
)

// The harness's clients: workers that issue, rotate, revoke and read
// grants on random nodes, the way httpapi does (fsm commands through
// Node.Apply; reads gated by Node.ReadReady, then fsm.Lookup), recording
// every operation with its call and return time for porcupine.

const harnessClient = "nemesis"

// hgrant is the workers' shared knowledge of one grant.
type hgrant struct {
	id       int
	attempts int // rotation attempts so far (token ids 1..attempts)
	cur      int // the refresh token last known current
}

// recorder holds the history and the grants. Times are nanoseconds since
// base on the monotonic clock.
type recorder struct {
	seed uint64
	base time.Time

	mu     sync.Mutex
	ops    []porcupine.Operation
	grants []*hgrant
}

func (r *recorder) now() int64 { return int64(time.Since(r.base)) }

func (r *recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// history returns the operations with every unknown return moved to the
// end of the history.
func (r *recorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := r.now() + 1
	out := append([]porcupine.Operation(nil), r.ops...)
	for i := range out {
		if out[i].Return == math.MaxInt64 {
			out[i].Return = end
		}
	}
	return out
}

// raw is the raw string of token j of grant g (access or refresh): unique
// per schedule, so its hash is fresh in the fsm.
func (r *recorder) raw(g, j int, refresh bool) string {
	kind := "at"
	if refresh {
		kind = "rt"
	}
	return fmt.Sprintf("%s_nemesis_%d_%d_%d", kind, r.seed, g, j)
}

func (r *recorder) hash(g, j int, refresh bool) fsm.Hash { return fsm.HashOf(r.raw(g, j, refresh)) }

// worker runs one client until ctx ends, choosing with rng.
type worker struct {
	id  int
	h   *harness
	rec *recorder
	rng *rand.Rand
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		slot := w.rng.IntN(len(w.h.slots()))
		x := w.rng.IntN(100)
		var wrote *hInput
		switch {
		case x < 15:
			wrote = w.issue(ctx, slot)
		case x < 30:
			wrote = w.rotate(ctx, slot)
		case x < 37:
			wrote = w.revoke(ctx, slot)
		default:
			if g := w.pick(); g != nil {
				w.read(ctx, slot, w.readInput(g))
			}
		}
		// Read your write elsewhere at once: the visibility barrier's
		// promise, and where a missing one shows first.
		if wrote != nil && w.rng.IntN(2) == 0 {
			in := *wrote
			if in.kind == hopRotate {
				in.tok = in.next
			}
			in.kind, in.refresh = hopRead, w.rng.IntN(3) == 0
			w.read(ctx, (slot+1+w.rng.IntN(len(w.h.slots())-1))%len(w.h.slots()), in)
		}
		sleepCtx(ctx, time.Duration(w.rng.IntN(5))*time.Millisecond)
	}
}

// pick chooses a grant, mostly among the newest, so that operations on
// one grant overlap.
func (w *worker) pick() *hgrant {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	n := len(w.rec.grants)
	if n == 0 {
		return nil
	}
	if w.rng.IntN(4) != 0 {
		return w.rec.grants[n-1-w.rng.IntN(min(n, 4))]
	}
	return w.rec.grants[w.rng.IntN(n)]
}

func (w *worker) readInput(g *hgrant) hInput {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	in := hInput{kind: hopRead, grant: g.id, tok: w.rng.IntN(g.attempts + 1)}
	if w.rng.IntN(3) == 0 {
		in.refresh = true
		if w.rng.IntN(2) == 0 {
			in.tok = g.cur
		}
	}
	return in
}

func (w *worker) issue(ctx context.Context, slot int) *hInput {
	w.rec.mu.Lock()
	g := &hgrant{id: len(w.rec.grants)}
	w.rec.grants = append(w.rec.grants, g)
	w.rec.mu.Unlock()
	now := time.Now()
	cmd := fsm.Encode(&fsm.IssueGrant{
		ClientID: harnessClient, Scope: "read", IssuedAt: now.UnixNano(),
		Access:  fsm.TokenSpec{Hash: w.rec.hash(g.id, 0, false), ExpiresAt: now.Add(time.Hour).UnixNano()},
		Refresh: fsm.TokenSpec{Hash: w.rec.hash(g.id, 0, true), ExpiresAt: now.Add(time.Hour).UnixNano()},
	})
	in := hInput{kind: hopIssue, grant: g.id}
	w.write(ctx, slot, in, cmd)
	return &in
}

func (w *worker) rotate(ctx context.Context, slot int) *hInput {
	g := w.pick()
	if g == nil {
		return nil
	}
	w.rec.mu.Lock()
	if g.attempts >= maxAttempts {
		w.rec.mu.Unlock()
		return nil
	}
	g.attempts++
	in := hInput{kind: hopRotate, grant: g.id, tok: g.cur, next: g.attempts}
	if w.rng.IntN(5) == 0 {
		in.tok = w.rng.IntN(g.attempts) // maybe reuse, maybe unknown
	}
	w.rec.mu.Unlock()
	now := time.Now()
	cmd := fsm.Encode(&fsm.RotateRefresh{
		Old: w.rec.hash(g.id, in.tok, true), ClientID: harnessClient, Now: now.UnixNano(),
		Grace:   math.MinInt64, // never a grace retry: reuse is reuse
		Access:  fsm.TokenSpec{Hash: w.rec.hash(g.id, in.next, false), ExpiresAt: now.Add(time.Hour).UnixNano()},
		Refresh: fsm.TokenSpec{Hash: w.rec.hash(g.id, in.next, true), ExpiresAt: now.Add(time.Hour).UnixNano()},
	})
	if out, ok := w.write(ctx, slot, in, cmd); ok && out.outcome == fsm.OK {
		w.rec.mu.Lock()
		g.cur = in.next
		w.rec.mu.Unlock()
	}
	return &in
}

func (w *worker) revoke(ctx context.Context, slot int) *hInput {
	g := w.pick()
	if g == nil {
		return nil
	}
	in := w.readInput(g)
	in.kind = hopRevoke
	w.write(ctx, slot, in, fsm.Encode(&fsm.RevokeToken{Token: w.rec.hash(g.id, in.tok, in.refresh)}))
	return &in
}

// write applies cmd on slot's node and records it; ok: the outcome is
// known. A request to a node that is down is never sent, so not recorded.
func (w *worker) write(ctx context.Context, slot int, in hInput, cmd []byte) (hOutput, bool) {
	hn := w.h.slots()[slot]
	call := w.rec.now()
	if ch := hn.held(); ch != nil {
		<-ch // a paused node: the request waits in its socket
	}
	n, up := hn.current()
	if !up {
		return hOutput{}, false
	}
	in.node = hn.name()
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	res, err := n.Apply(actx, cmd)
	cancel()
	op := porcupine.Operation{ClientId: w.id, Input: in, Call: call, Return: w.rec.now()}
	out := hOutput{outcome: res.Outcome}
	if err != nil {
		op.Return, out = math.MaxInt64, hOutput{unknown: true}
	}
	op.Output = out
	w.rec.add(op)
	return out, err == nil
}

// read looks a token up on slot's node as httpapi's validate does (see
// harnessRead) and records the answer; a refused read is not recorded.
func (w *worker) read(ctx context.Context, slot int, in hInput) {
	hn := w.h.slots()[slot]
	call := w.rec.now()
	if ch := hn.held(); ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
	n, up := hn.current()
	if !up {
		return
	}
	in.node = hn.name()
	found, err := harnessRead(ctx, n, w.rec.hash(in.grant, in.tok, in.refresh), in.refresh)
	if err != nil {
		return
	}
	w.rec.add(porcupine.Operation{ClientId: w.id, Input: in, Output: hOutput{found: found}, Call: call, Return: w.rec.now()})
}

// harnessRead is the read path of httpapi (validate.go decideValidate,
// introspect.go): BeginRead (the readiness gate and the read's fence), the
// lookup in local memory, then FinishRead with the fsm's in-flight index
// of the key, taken after the lookup. An error means the node would have
// answered 503.
func harnessRead(ctx context.Context, n *Node, h fsm.Hash, refresh bool) (bool, error) {
	fence, err := n.BeginRead()
	if err != nil {
		return false, err
	}
	t, found := n.fsm.Lookup(h, time.Now().UnixNano())
	if err := n.FinishRead(ctx, fence, n.fsm.InFlight(h)); err != nil {
		return false, err
	}
	want := fsm.KindAccess
	if refresh {
		want = fsm.KindRefresh
	}
	return found && t.Kind == want, nil
}
