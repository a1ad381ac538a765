package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/internal/syncbuf"
)

// Running schedules: TestNemesis runs -nemesis.schedules of them (50 in
// make test; make chaos runs 1,000 without -race), seeds counted up from
// -nemesis.seed, -nemesis.parallel at a time (they mostly wait: for
// elections, office waits, phase durations), and prints
// "N schedules, M operations, V violations". A violation names its seed,
// the command that reruns it, the operations of each grant porcupine could
// not linearize, and files with porcupine's visualization and the nodes'
// log (under $OUT when set, else a directory that outlives the test).
var (
	nemSchedules = flag.Int("nemesis.schedules", 50, "fault-injection schedules TestNemesis runs")
	nemSeed      = flag.Uint64("nemesis.seed", 1, "seed of TestNemesis's first schedule (the others count up)")
	nemParallel  = flag.Int("nemesis.parallel", 8, "schedules run at once")
	nemSize      = flag.Int("nemesis.size", 0, "nodes per schedule; 0: 3 or 5, as the seed says")
)

func TestNemesis(t *testing.T) {
	first, count := *nemSeed, *nemSchedules
	results := runSchedules(context.Background(), t, first, count, *nemParallel, *nemSize, false)
	ops, violations, failed := 0, 0, 0
	for _, r := range results {
		ops += r.ops
		switch {
		case r.violation:
			violations++
			t.Errorf("seed %d: history not linearizable\n%s\nvisualization and log: %s\nreproduce: go test ./cluster/ -run '^TestNemesis$' -count=1 -v -nemesis.seed=%d -nemesis.schedules=1 -nemesis.size=%d",
				r.seed, r.summary, r.artifacts, r.seed, r.size)
		case r.err != nil:
			failed++
			t.Errorf("seed %d: %v\nlog: %s\nreproduce: go test ./cluster/ -run '^TestNemesis$' -count=1 -v -nemesis.seed=%d -nemesis.schedules=1 -nemesis.size=%d",
				r.seed, r.err, r.artifacts, r.seed, r.size)
		}
	}
	line := fmt.Sprintf("%d schedules, %d operations, %d violations", len(results), ops, violations)
	seeds := fmt.Sprintf("seeds %d..%d", first, first+uint64(count)-1)
	if failed > 0 {
		seeds += fmt.Sprintf(" (%d schedules failed without a verdict)", failed)
	}
	fmt.Println(line)
	fmt.Println(seeds)
	t.Log(line + "; " + seeds)
}

// TestNemesisPlantedBug proves the harness can fail: with the leader
// acknowledging writes before lease holders applied them (testHooks.
// ackEarly), a follower answers a read after the acknowledgement from
// its older state, and some schedule among the first few must say so.
func TestNemesisPlantedBug(t *testing.T) {
	const tries = 12
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	results := runSchedules(ctx, t, 1_000_001, tries, *nemParallel, 3, true, func(r scheduleResult) {
		if r.violation {
			once.Do(cancel) // one is enough
		}
	})
	for _, r := range results {
		if r.violation {
			t.Logf("planted bug caught by seed %d after %d operations:\n%s", r.seed, r.ops, r.summary)
			return
		}
	}
	t.Fatalf("the planted bug (acknowledging before lease holders applied) went unnoticed in %d schedules", tries)
}

type scheduleResult struct {
	seed      uint64
	size      int
	ops       int
	violation bool
	err       error
	summary   string // the grants porcupine could not linearize
	artifacts string // where the visualization and log were written
}

// runSchedules runs count schedules from seed first, parallel at a time;
// each done (if given) sees every result as it arrives.
func runSchedules(ctx context.Context, t *testing.T, first uint64, count, parallel, size int, plant bool, done ...func(scheduleResult)) []scheduleResult {
	base := t.TempDir()
	results := make([]scheduleResult, count)
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range count {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := runSchedule(ctx, first+uint64(i), size, plant, base)
			mu.Lock()
			results[i] = r
			mu.Unlock()
			for _, f := range done {
				f(r)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil { // stopped early: only what ran
		out := results[:0]
		for _, r := range results {
			if r.seed != 0 {
				out = append(out, r)
			}
		}
		results = out
	}
	return results
}

// runSchedule runs one seed's schedule on a fresh cluster and checks the
// history.
func runSchedule(ctx context.Context, seed uint64, size int, plant bool, base string) (res scheduleResult) {
	s := newSchedule(seed, size)
	res = scheduleResult{seed: seed, size: s.size}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir, err := os.MkdirTemp(base, fmt.Sprintf("seed%d-", seed))
	if err != nil {
		res.err = err
		return res
	}
	defer os.RemoveAll(dir)
	var vis *porcupine.LinearizationInfo // set when the history fails
	defer func() {
		// A planted bug's violation is expected: nothing worth keeping.
		if (res.violation && !plant || res.err != nil) && ctx.Err() == nil {
			res.artifacts = saveArtifacts(seed, []byte(logs.String()), vis)
		}
	}()
	log.Info("nemesis: schedule", "seed", seed, "size", s.size, "phases", fmt.Sprint(s.phases))
	h, err := newHarness(ctx, seed, dir, s.size, s.clockRate, plant, log)
	if err != nil {
		res.err = err
		return res
	}
	defer h.close()
	rec := &recorder{seed: seed, base: time.Now()}
	if err := h.setup(ctx); err != nil {
		res.err = err
		return res
	}
	res.err = h.drive(ctx, s, rec)
	if res.err == nil {
		res.err = h.settle(ctx, rec)
	}
	history := rec.history()
	res.ops = len(history)
	res.violation, res.summary, vis = checkHistory(history)
	return res
}

// setup creates the harness's OAuth client, retrying through any node.
func (h *harness) setup(ctx context.Context) error {
	cmd := fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{
		ID: harnessClient, Name: harnessClient, GrantTypes: []string{"client_credentials", "refresh_token"}, Scopes: []string{"read"},
	}})
	return h.untilOK(ctx, "create client", func(n *Node) error {
		res, err := n.Apply(ctx, cmd)
		if err == nil && res.Outcome != fsm.OK && res.Outcome != fsm.Exists {
			err = res.Err()
		}
		return err
	})
}

// untilOK retries f on each running node in turn for up to a minute.
func (h *harness) untilOK(ctx context.Context, what string, f func(*Node) error) error {
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, hn := range h.slots() {
			if n, up := hn.current(); up {
				if last = f(n); last == nil {
					return nil
				}
			}
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	return fmt.Errorf("%s: no node succeeded within a minute: %v", what, last)
}

// drive runs the workers through the schedule's phases, then heals.
func (h *harness) drive(ctx context.Context, s *schedule, rec *recorder) error {
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range s.workers {
		w := &worker{id: i, h: h, rec: rec, rng: rand.New(rand.NewPCG(s.seed, uint64(i)+1))}
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx) }()
	}
	var err error
	for _, p := range s.phases {
		if err = h.runPhase(ctx, p); err != nil {
			break
		}
	}
	h.nem.heal()
	for _, hn := range h.slots() {
		hn.unpause()
	}
	stop()
	wg.Wait()
	return err
}

// settle waits for the healed cluster to serve reads everywhere and take
// a write, then reads every token on every node: those reads are part of
// the history too.
func (h *harness) settle(ctx context.Context, rec *recorder) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := h.waitReady(wctx); err != nil {
		return fmt.Errorf("after healing: %w", err)
	}
	w := &worker{id: 100, h: h, rec: rec, rng: rand.New(rand.NewPCG(rec.seed, 100))}
	if err := h.untilOK(ctx, "a write after healing", func(*Node) error {
		in := w.issue(ctx, w.rng.IntN(len(h.slots())))
		if out, ok := w.lastOutcome(in); !ok || out != fsm.OK {
			return errors.New("issue not acknowledged")
		}
		return nil
	}); err != nil {
		return err
	}
	rec.mu.Lock()
	grants := append([]*hgrant(nil), rec.grants...)
	rec.mu.Unlock()
	for slot := range h.slots() {
		for _, g := range grants {
			for j := 0; j <= g.attempts; j++ {
				w.read(ctx, slot, hInput{kind: hopRead, grant: g.id, tok: j})
			}
			w.read(ctx, slot, hInput{kind: hopRead, grant: g.id, tok: g.cur, refresh: true})
		}
	}
	return nil
}

// lastOutcome finds the recorded outcome of the write in (by grant and
// kind, the last such by worker w).
func (w *worker) lastOutcome(in *hInput) (fsm.Outcome, bool) {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	for i := len(w.rec.ops) - 1; i >= 0; i-- {
		op := w.rec.ops[i]
		if got := op.Input.(hInput); op.ClientId == w.id && got.grant == in.grant && got.kind == in.kind {
			out := op.Output.(hOutput)
			return out.outcome, !out.unknown
		}
	}
	return 0, false
}

// checkHistory runs porcupine; on a violation it describes each grant
// that fails (three at most) and returns what the visualization needs.
func checkHistory(history []porcupine.Operation) (bool, string, *porcupine.LinearizationInfo) {
	model := harnessModel()
	res, info := porcupine.CheckOperationsVerbose(model, history, time.Minute)
	if res == porcupine.Ok {
		return false, "", nil
	}
	var b strings.Builder
	if res == porcupine.Unknown {
		fmt.Fprintf(&b, "porcupine gave no verdict within a minute over %d operations\n", len(history))
	}
	shown := 0
	for _, part := range model.Partition(history) {
		if shown < 3 && !porcupine.CheckOperations(model, part) {
			shown++
			b.WriteString(describePartition(part))
		}
	}
	return true, b.String(), &info
}

// describePartition lists one grant's operations by call time in
// milliseconds since the history began ("end": an unknown outcome).
func describePartition(part []porcupine.Operation) string {
	part = append([]porcupine.Operation(nil), part...)
	sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
	var b strings.Builder
	for _, op := range part {
		ret := fmt.Sprintf("%.1f", float64(op.Return)/1e6)
		if op.Output.(hOutput).unknown {
			ret = "end"
		}
		fmt.Fprintf(&b, "  [%9.1f ms .. %9s] c%-3d %s\n", float64(op.Call)/1e6, ret, op.ClientId, describeOp(op.Input.(hInput), op.Output.(hOutput)))
	}
	return b.String()
}

// saveArtifacts writes the schedule's log and, for a violation,
// porcupine's visualization into one directory: $OUT when set, else one
// that outlives the test so the reported paths can be opened afterwards.
// It returns the directory.
func saveArtifacts(seed uint64, log []byte, vis *porcupine.LinearizationInfo) string {
	dir := os.Getenv("OUT")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "tokend-nemesis-"); err != nil {
			return fmt.Sprintf("(not written: %v)", err)
		}
	}
	var errs []error
	errs = append(errs, os.WriteFile(filepath.Join(dir, fmt.Sprintf("nemesis-seed%d.log", seed)), log, 0o644))
	if vis != nil {
		errs = append(errs, porcupine.VisualizePath(harnessModel(), *vis, filepath.Join(dir, fmt.Sprintf("nemesis-seed%d.html", seed))))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Sprintf("%s (incomplete: %v)", dir, err)
	}
	return dir
}
