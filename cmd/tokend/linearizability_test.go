package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestLinearizability checks the consistency guarantee of
// docs/ARCHITECTURE.md ("Guarantees": token reads and writes are
// linearizable, reads that overlap writes included; the argument is
// cluster/doc.go's "Consistency") with porcupine, over a
// history recorded from three real processes while faults are injected:
//
//  1. the leader is killed with SIGKILL and restarted on its data dir;
//  2. a follower is paused with SIGSTOP for ~2 s (a stopped process is cut
//     off from everyone) and resumed with SIGCONT;
//  3. the leader is paused for ~3 s or until the other two have elected a
//     new leader and acknowledged writes, then resumed.
//
// Five workers issue, revoke and validate against random nodes (mostly
// avoiding a node that was slow to answer lately, as a load balancer would).
// During each pause the test itself drives writes through the other nodes
// until some are acknowledged, then sends "probe" validations of exactly
// those tokens to the paused node: writes it cannot have seen. They sit in its socket until SIGCONT and are the
// sharpest test of "after SIGCONT it must never answer stale": their call
// time is after the acknowledgement, so any stale answer is a violation.
//
// # What the model checks
//
// Each token is an object absent → valid → revoked, and the history must be
// linearizable, reads that overlap writes included: every issue and
// revoke takes effect at one point inside its interval, and every
// validate answers the state at one point inside its own. cluster/doc.go
// ("Consistency") argues it: a node that applied a write before its
// acknowledgement answers a read of that token only once every node that
// serves reads has applied it. So:
//
//   - a validate that returned before the revoke was called must be 200;
//   - a validate called after the revoke returned 200 must be 401, on every
//     node, including one just resumed from SIGSTOP or restarted;
//   - a validate overlapping the revoke may answer either, but once one
//     answer 401 has returned, every validate called later must be 401
//     too, on any node (before this release only acknowledged writes were
//     promised, and the model had a second point per revoke to allow a
//     later 200);
//   - a revoke whose answer was lost or was an error has an unknown outcome:
//     its return is left open (the end of the history), so it may take
//     effect at any later time or never (placed after everything else),
//     but not both: once some validate saw it, later ones must too.
//
// Issues: the raw token exists only in the /token response, so every
// validate or revoke of a token is called after its issue returned 200,
// i.e. after the write is acknowledged. An issue whose answer was lost
// (transport error, 5xx) has an unknown outcome, but no later operation
// can name its token: its partition would hold that operation alone, which
// is trivially linearizable, so such issues are only counted.
//
// Validations answered 503 (no lease, or a write in flight that did not
// become visible in time; allowed) or lost carry no information and are
// dropped.
//
// Porcupine partitions the history by token, so checking is fast.
func TestLinearizability(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	c := newTestCluster(t, 3)
	clientID, secret := c.createClient(c.procs[0])

	rec := newLinRecorder(clientID, secret, c.procs)
	rec.jwtID, rec.jwtSec = c.createJWTClient(c.procs[0]) // jwtaccess_test.go
	t.Cleanup(rec.tr.CloseIdleConnections)

	// Load: workers hit random nodes (killed and stopped ones included:
	// refused connections and timeouts are part of the history's story).
	nodes := make([]string, len(c.procs))
	for i, p := range c.procs {
		nodes[i] = p.httpAddr
	}
	var wg sync.WaitGroup
	stopLoad := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopLoad) }); wg.Wait() }
	t.Cleanup(stop)

	// Stopped processes are resumed before anything else is torn down (cleanups run
	// last-registered first: this one, then stopping the load, then the
	// cluster's, which kills the processes).
	stopped := map[*proc]bool{}
	sigstop := func(p *proc) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %s: %v", p.id, err)
		}
		stopped[p] = true
		t.Logf("%v SIGSTOP %s", rec.since(), p.id)
	}
	sigcont := func(p *proc) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatalf("SIGCONT %s: %v", p.id, err)
		}
		delete(stopped, p)
		t.Logf("%v SIGCONT %s", rec.since(), p.id)
	}
	t.Cleanup(func() {
		for p := range stopped {
			if p.running() {
				_ = p.cmd.Process.Signal(syscall.SIGCONT)
			}
		}
	})

	for w := 0; w < linWorkers; w++ {
		wg.Add(1)
		cl := rec.newCaller()
		go func() {
			defer wg.Done()
			rec.worker(cl, rand.New(rand.NewPCG(seed, uint64(w))), nodes, stopLoad)
		}()
	}

	// leader finds the leader among running, not stopped nodes with a short
	// client timeout (getStatus's 15 s client would hang on a stopped node).
	leader := func() (*proc, error) {
		for _, p := range c.procs {
			if !p.running() || stopped[p] {
				continue
			}
			if s, err := rec.status(p.httpAddr); err == nil && s.State == "Leader" {
				return p, nil
			}
		}
		return nil, fmt.Errorf("no leader among running, unstopped nodes")
	}
	waitLeader := func(not *proc) *proc {
		t.Helper()
		var l *proc
		linWaitFor(t, "a leader", func() (err error) {
			l, err = leader()
			if err == nil && l == not {
				return fmt.Errorf("still %s", l.id)
			}
			return err
		})
		return l
	}
	// writesAckedSince polls until the cluster acknowledged at least
	// issues and revokes writes that were called at or after since.
	writesAckedSince := func(what string, since int64, issues, revokes int) {
		t.Helper()
		linWaitFor(t, what, func() error {
			i, r := rec.ackedSince(since)
			if i < issues || r < revokes {
				return fmt.Errorf("%d issues, %d revokes acknowledged since", i, r)
			}
			return nil
		})
	}
	// driveWrites issues and revokes tokens through the nodes in live
	// (recorded like the load's) until the cluster has acknowledged two
	// issues and two revokes called since the fault at since. The load's
	// workers alone are a poor driver here: most of them are waiting on the
	// paused node for their client timeout.
	driver := rec.newCaller()
	driverRng := rand.New(rand.NewPCG(seed, 1<<32))
	driveWrites := func(what string, since int64, live ...*proc) {
		t.Helper()
		linWaitFor(t, what, func() error {
			i, r := rec.ackedSince(since)
			if i >= 2 && r >= 2 {
				return nil
			}
			node := live[driverRng.IntN(len(live))].httpAddr
			if i < 2 || driverRng.IntN(2) == 0 {
				rec.issue(driver, node)
			} else {
				rec.revoke(driver, driverRng, node)
			}
			return fmt.Errorf("%d issues, %d revokes acknowledged since", i, r)
		})
	}
	others := func(not *proc) []*proc {
		var out []*proc
		for _, p := range c.procs {
			if p != not {
				out = append(out, p)
			}
		}
		return out
	}
	// pace sleeps until at least d has passed since the fault at (ns since
	// the recorder's start); it only paces the schedule.
	pace := func(at int64, d time.Duration) {
		if rest := time.Duration(at) + d - time.Duration(rec.now()); rest > 0 {
			time.Sleep(rest)
		}
	}

	pace(0, 2*time.Second)
	linWaitFor(t, "load running", func() error {
		if i, r := rec.ackedSince(0); i < 10 || r < 3 {
			return fmt.Errorf("%d issues, %d revokes acknowledged", i, r)
		}
		return nil
	})

	// Fault 1: SIGKILL the leader, restart it on the same data dir.
	l := waitLeader(nil)
	at := rec.now()
	l.kill(t)
	t.Logf("%v SIGKILL leader %s", rec.since(), l.id)
	waitLeader(l)
	writesAckedSince("writes acknowledged after the leader was killed", at, 3, 1)
	l.start(t)
	t.Logf("%v restarted %s", rec.since(), l.id)
	for _, p := range c.procs {
		c.waitReady(p)
	}
	t.Logf("%v all ready", rec.since())

	// Fault 2: pause a follower; the leader acknowledges writes once the
	// follower's lease has lapsed; probe it with those tokens, resume it.
	l = waitLeader(nil)
	var f *proc
	for _, p := range c.procs {
		if p != l {
			f = p
			break
		}
	}
	at = rec.now()
	sigstop(f)
	driveWrites("writes acknowledged while a follower is stopped", at, others(f)...)
	pace(at, 2*time.Second)
	rec.probe(&wg, f.httpAddr, at, 8)
	time.Sleep(300 * time.Millisecond) // let the probes reach f's socket
	sigcont(f)
	c.waitReady(f)
	t.Logf("%v %s ready", rec.since(), f.id)

	// Fault 3: pause the leader; the other two elect a leader, which
	// acknowledges writes after its office wait; probe the old leader with
	// those tokens, resume it.
	l = waitLeader(nil)
	at = rec.now()
	sigstop(l)
	nl := waitLeader(l)
	t.Logf("%v new leader %s", rec.since(), nl.id)
	driveWrites("writes acknowledged while the leader is stopped", at, others(l)...)
	pace(at, 3*time.Second)
	rec.probe(&wg, l.httpAddr, at, 24)
	time.Sleep(300 * time.Millisecond)
	sigcont(l)

	// Liveness: every node becomes ready again after the last fault, and
	// load continues a little while everything is healthy.
	for _, p := range c.procs {
		c.waitReady(p)
	}
	t.Logf("%v all ready after the last fault", rec.since())
	resumed := rec.now()
	writesAckedSince("writes acknowledged after the last fault", resumed, 2, 1)
	pace(resumed, 2*time.Second)
	stop()
	t.Logf("%v load stopped", rec.since())

	history, counts := rec.result()
	t.Logf("history: %d operations; counts %v", len(history), counts)
	for _, k := range []string{"issue 200", "revoke 200", "validate 200", "validate 401"} {
		if counts[k] == 0 {
			t.Errorf("liveness: no %q in the history", k)
		}
	}
	if counts["issue 200"] < 20 || counts["revoke 200"] < 10 || counts["validate 200"]+counts["validate 401"] < 50 {
		t.Errorf("liveness: too few successful operations: %v", counts)
	}
	for _, u := range rec.unexpected() {
		t.Errorf("unexpected answer: %s", u)
	}

	model := linModel()
	res, info := porcupine.CheckOperationsVerbose(model, history, 60*time.Second)
	switch res {
	case porcupine.Ok:
		t.Logf("history is linearizable (as modelled) over %d tokens", len(model.Partition(history)))
		return
	case porcupine.Unknown:
		t.Fatalf("porcupine timed out checking %d operations", len(history))
	}
	dir := linArtifactDir(t)
	path := filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Errorf("visualization: %v", err)
	} else {
		t.Logf("visualization: %s", path)
	}
	for _, part := range model.Partition(history) {
		if !porcupine.CheckOperations(model, part) {
			t.Errorf("not linearizable: token %s\n%s", linShort(part[0].Input.(linInput).token), linDescribe(part))
		}
	}
	t.Fatalf("consistency violation: the history is not linearizable under the modelled guarantee")
}

const (
	linWorkers      = 5
	linOpsPerWorker = 3000
	linPool         = 48 // recent tokens that validates and revokes pick from
)

// linWaitFor is eventually with a shorter bound, for fault-schedule steps.
func linWaitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	stop := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(stop) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after 30s: %v", what, err)
}

// linArtifactDir is t.ArtifactDir when -test.artifacts asks to keep
// artifacts; otherwise a directory that survives the test, so the logged
// visualization path can be opened afterwards.
func linArtifactDir(t *testing.T) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir, err := os.MkdirTemp("", "tokend-linearizability-")
	if err != nil {
		return t.TempDir()
	}
	return dir
}

// --- model -------------------------------------------------------------

type linKind uint8

const (
	linIssue linKind = iota
	linRevoke
	linValidate
)

type linInput struct {
	kind  linKind
	token string
	node  string
	probe bool
}

type linOutput struct {
	status  int  // validate: 200 or 401
	unknown bool // issue/revoke: outcome unknown (lost or error)
}

type linState uint8

const (
	linAbsent linState = iota
	linValid
	linRevoked
)

func (s linState) String() string {
	return [...]string{"absent", "valid", "revoked"}[s]
}

func linModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			idx := map[string]int{}
			var parts [][]porcupine.Operation
			for _, op := range h {
				tok := op.Input.(linInput).token
				i, ok := idx[tok]
				if !ok {
					i = len(parts)
					idx[tok] = i
					parts = append(parts, nil)
				}
				parts[i] = append(parts[i], op)
			}
			return parts
		},
		Init: func() any { return linAbsent },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(linState), input.(linInput), output.(linOutput)
			switch in.kind {
			case linIssue:
				return s == linAbsent, linValid
			case linRevoke:
				// Each token is revoked once by the load (revokeStarted).
				return s == linValid, linRevoked
			case linValidate:
				switch out.status {
				case http.StatusOK:
					return s == linValid, s
				case http.StatusUnauthorized:
					return s == linAbsent || s == linRevoked, s
				}
			}
			return false, s
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(linInput), output.(linOutput)
			return linDescribeOp(in, out)
		},
		DescribeState: func(state any) string { return state.(linState).String() },
	}
}

func linDescribeOp(in linInput, out linOutput) string {
	res := "200"
	if out.unknown {
		res = "unknown"
	}
	switch in.kind {
	case linIssue:
		return fmt.Sprintf("issue@%s -> %s", in.node, res)
	case linRevoke:
		return fmt.Sprintf("revoke@%s -> %s", in.node, res)
	}
	p := ""
	if in.probe {
		p = " (probe of a paused node)"
	}
	return fmt.Sprintf("validate@%s -> %d%s", in.node, out.status, p)
}

// linDescribe lists one token's operations by call time, in ms.
func linDescribe(ops []porcupine.Operation) string {
	ops = append([]porcupine.Operation(nil), ops...)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "  [%10.3f ms, %10.3f ms] client %2d  %s\n",
			float64(op.Call)/1e6, float64(op.Return)/1e6, op.ClientId,
			linDescribeOp(op.Input.(linInput), op.Output.(linOutput)))
	}
	return b.String()
}

func linShort(tok string) string {
	if len(tok) > 12 {
		return tok[:12] + "…"
	}
	return tok
}

// --- load and recording ------------------------------------------------

type linToken struct {
	tok           string
	revokeStarted bool
}

type linAck struct {
	kind linKind // linIssue or linRevoke
	tok  string
	call int64
}

type linRecorder struct {
	t0             time.Time
	tr             *http.Transport
	hc             *http.Client
	clientID, sec  string
	jwtID, jwtSec  string // a JWT-format client for part of the issues (jwtaccess_test.go)
	mu             sync.Mutex
	ops            []porcupine.Operation
	open           []int // indexes of operations whose return is unknown
	pool           []*linToken
	acks           []linAck
	counts         map[string]int
	unexpectedList []string
	nextID         int
	avoid          map[string]int64  // node → until (ns): it timed out lately
	names          map[string]string // node address → id, read-only
}

func newLinRecorder(clientID, secret string, procs []*proc) *linRecorder {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	names := map[string]string{}
	for _, p := range procs {
		names[p.httpAddr] = p.id
	}
	return &linRecorder{names: names,
		t0: time.Now(), tr: tr, hc: &http.Client{Timeout: 5 * time.Second, Transport: tr},
		clientID: clientID, sec: secret, counts: map[string]int{},
		avoid: map[string]int64{},
	}
}

func (r *linRecorder) now() int64 { return int64(time.Since(r.t0)) }

func (r *linRecorder) since() time.Duration { return time.Since(r.t0).Round(time.Millisecond) }

// pickNode picks a random node, mostly avoiding one that was slow to answer
// in the last two seconds (like a load balancer would), so that a paused node does
// not tie up every worker for the client timeout. Some requests still go
// there; the probes cover the moment it resumes.
func (r *linRecorder) pickNode(rng *rand.Rand, nodes []string) string {
	if rng.IntN(10) > 0 {
		now := r.now()
		var ok []string
		r.mu.Lock()
		for _, n := range nodes {
			if r.avoid[n] <= now {
				ok = append(ok, n)
			}
		}
		r.mu.Unlock()
		if len(ok) > 0 {
			return ok[rng.IntN(len(ok))]
		}
	}
	return nodes[rng.IntN(len(nodes))]
}

func (r *linRecorder) do(method, addr, path, body string, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// A request still unanswered after a second marks the node to be
	// avoided for two seconds.
	slow := time.AfterFunc(time.Second, func() {
		r.mu.Lock()
		r.avoid[addr] = r.now() + int64(2*time.Second)
		r.mu.Unlock()
	})
	resp, err := r.hc.Do(req)
	slow.Stop()
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

func (r *linRecorder) status(addr string) (status, error) {
	var s status
	code, body, err := r.do(http.MethodGet, addr, "/cluster/status", "", adminAuth)
	if err != nil {
		return s, err
	}
	if code != http.StatusOK {
		return s, fmt.Errorf("status %d", code)
	}
	return s, json.Unmarshal(body, &s)
}

func (r *linRecorder) unexpected() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.unexpectedList...)
}

// linCaller is who calls, for porcupine's visualization: one row for its
// operations.
type linCaller struct{ id int }

func (r *linRecorder) newID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	return r.nextID - 1
}

func (r *linRecorder) newCaller() linCaller { return linCaller{r.newID()} }

func (r *linRecorder) worker(cl linCaller, rng *rand.Rand, nodes []string, stop <-chan struct{}) {
	for n := 0; n < linOpsPerWorker; n++ {
		select {
		case <-stop:
			return
		default:
		}
		node := r.pickNode(rng, nodes)
		x := rng.Float64()
		var ok bool
		switch {
		case x < 0.25:
			ok = r.issue(cl, node)
		case x < 0.45:
			ok = r.revoke(cl, rng, node)
		default:
			ok = r.validate(cl, rng, node)
		}
		// Pace the load so three nodes and a -race test binary fit on two
		// busy cores without starving Raft's heartbeats; back off a little
		// more after a failure (e.g. a killed node refusing connections).
		d := time.Duration(3+rng.IntN(8)) * time.Millisecond
		if !ok {
			d += 30 * time.Millisecond
		}
		time.Sleep(d)
	}
}

func (r *linRecorder) issue(cl linCaller, node string) bool {
	id, sec := r.issuerCreds()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {sec}}
	call := r.now()
	code, body, err := r.do(http.MethodPost, node, "/token", form.Encode(), nil)
	ret := r.now()
	if err != nil || code != http.StatusOK {
		r.failedWrite("issue", node, code, body, err)
		return false
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		r.mu.Lock()
		r.unexpectedList = append(r.unexpectedList, fmt.Sprintf("issue@%s: 200 with body %q", node, body))
		r.mu.Unlock()
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts["issue 200"]++
	r.ops = append(r.ops, porcupine.Operation{ClientId: cl.id,
		Input: linInput{kind: linIssue, token: tok.AccessToken, node: r.names[node]}, Call: call,
		Output: linOutput{status: http.StatusOK}, Return: ret})
	r.acks = append(r.acks, linAck{kind: linIssue, tok: tok.AccessToken, call: call})
	r.pool = append(r.pool, &linToken{tok: tok.AccessToken})
	if len(r.pool) > linPool {
		r.pool = r.pool[1:]
	}
	return true
}

// failedWrite counts a write that was not acknowledged. 503 (no leader, no
// quorum, gave up waiting) and lost answers are expected under faults; a
// node that just restarted may not know the client yet (401) until it has
// caught up. Anything else is unexpected.
func (r *linRecorder) failedWrite(what, node string, code int, body []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		r.counts[what+" lost"]++
	case code == http.StatusServiceUnavailable:
		r.counts[fmt.Sprintf("%s %d", what, code)]++
	case code == http.StatusUnauthorized:
		r.counts[fmt.Sprintf("%s %d@%s", what, code, r.names[node])]++
	default:
		r.counts[fmt.Sprintf("%s %d", what, code)]++
		r.unexpectedList = append(r.unexpectedList, fmt.Sprintf("%s@%s: %d %s", what, node, code, body))
	}
}

func (r *linRecorder) revoke(cl linCaller, rng *rand.Rand, node string) bool {
	r.mu.Lock()
	var cands []*linToken
	for _, tk := range r.pool {
		if !tk.revokeStarted {
			cands = append(cands, tk)
		}
	}
	if len(cands) == 0 {
		r.mu.Unlock()
		return r.issue(cl, node)
	}
	tk := cands[rng.IntN(len(cands))]
	tk.revokeStarted = true
	r.mu.Unlock()

	id, sec := r.ownerCreds(tk.tok)
	form := url.Values{"token": {tk.tok}, "client_id": {id}, "client_secret": {sec}}
	call := r.now()
	code, body, err := r.do(http.MethodPost, node, "/revoke", form.Encode(), nil)
	ret := r.now()
	ok := err == nil && code == http.StatusOK
	if !ok {
		r.failedWrite("revoke", node, code, body, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok {
		r.open = append(r.open, len(r.ops)) // pending: returns at the end
	}
	r.ops = append(r.ops, porcupine.Operation{ClientId: cl.id,
		Input: linInput{kind: linRevoke, token: tk.tok, node: r.names[node]}, Call: call,
		Output: linOutput{unknown: !ok}, Return: ret})
	if ok {
		r.counts["revoke 200"]++
		r.acks = append(r.acks, linAck{kind: linRevoke, tok: tk.tok, call: call})
	}
	return ok
}

func (r *linRecorder) validate(cl linCaller, rng *rand.Rand, node string) bool {
	r.mu.Lock()
	if len(r.pool) == 0 {
		r.mu.Unlock()
		return r.issue(cl, node)
	}
	tok := r.pool[rng.IntN(len(r.pool))].tok
	r.mu.Unlock()
	return r.validateTok(cl.id, node, tok, false)
}

func (r *linRecorder) validateTok(cid int, node, tok string, probe bool) bool {
	call := r.now()
	code, body, err := r.do(http.MethodGet, node, "/validate", "", map[string]string{"Authorization": "Bearer " + tok})
	ret := r.now()
	what := "validate"
	if probe {
		what = "probe@" + r.names[node]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		r.counts[what+" lost"]++
		return false
	case code == http.StatusServiceUnavailable:
		r.counts[what+" 503"]++
		return false
	case code == http.StatusOK || code == http.StatusUnauthorized:
		r.counts[fmt.Sprintf("%s %d", what, code)]++
		r.ops = append(r.ops, porcupine.Operation{ClientId: cid,
			Input: linInput{kind: linValidate, token: tok, node: r.names[node], probe: probe}, Call: call,
			Output: linOutput{status: code}, Return: ret})
		return true
	default:
		r.counts[fmt.Sprintf("%s %d", what, code)]++
		r.unexpectedList = append(r.unexpectedList, fmt.Sprintf("%s@%s: %d %s", what, node, code, body))
		return false
	}
}

// ackedSince counts acknowledged issues and revokes called at or after
// since.
func (r *linRecorder) ackedSince(since int64) (issues, revokes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.acks {
		if a.call >= since {
			if a.kind == linIssue {
				issues++
			} else {
				revokes++
			}
		}
	}
	return issues, revokes
}

// probe validates, on node (paused), tokens whose issue or revoke was
// called after since and acknowledged by the others: writes the paused node
// cannot have seen. The requests wait in its socket until SIGCONT.
func (r *linRecorder) probe(wg *sync.WaitGroup, node string, since int64, n int) {
	r.mu.Lock()
	var toks []string
	seen := map[string]bool{}
	for i := len(r.acks) - 1; i >= 0 && len(toks) < n; i-- {
		if a := r.acks[i]; a.call >= since && !seen[a.tok] {
			seen[a.tok] = true
			toks = append(toks, a.tok)
		}
	}
	r.mu.Unlock()
	for i := 0; i < n && len(toks) > 0; i++ {
		tok := toks[i%len(toks)]
		cid := r.newID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.validateTok(cid, node, tok, true)
		}()
	}
}

// result returns the history, with unknown returns closed at its end, and
// the counts by operation and answer.
func (r *linRecorder) result() ([]porcupine.Operation, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := r.now() + 1
	ops := append([]porcupine.Operation(nil), r.ops...)
	for _, i := range r.open {
		ops[i].Return = end
	}
	counts := map[string]int{}
	for k, v := range r.counts {
		counts[k] = v
	}
	return ops, counts
}

// TestLinearizabilityModel checks the model on small hand-made histories:
// what the design allows passes, a stale answer after an acknowledgement
// does not.
func TestLinearizabilityModel(t *testing.T) {
	const tok = "tok"
	issue := func(call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 0, Input: linInput{kind: linIssue, token: tok, node: "n1"},
			Call: call, Output: linOutput{status: 200}, Return: ret}
	}
	revoke := func(call, ret int64, unknown bool) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Input: linInput{kind: linRevoke, token: tok, node: "n2"},
			Call: call, Output: linOutput{unknown: unknown}, Return: ret}
	}
	validate := func(call, ret int64, status int) porcupine.Operation {
		return porcupine.Operation{ClientId: 3, Input: linInput{kind: linValidate, token: tok, node: "n3"},
			Call: call, Output: linOutput{status: status}, Return: ret}
	}
	h := func(ops ...any) []porcupine.Operation {
		var out []porcupine.Operation
		for _, o := range ops {
			switch o := o.(type) {
			case porcupine.Operation:
				out = append(out, o)
			case []porcupine.Operation:
				out = append(out, o...)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"issued then valid", true, h(issue(0, 10), validate(11, 12, 200))},
		{"stale 401 after issue returned", false, h(issue(0, 10), validate(11, 12, 401))},
		{"stale 200 after revoke returned", false, h(issue(0, 10), revoke(20, 30, false), validate(31, 32, 200))},
		{"401 before revoke called", false, h(issue(0, 10), validate(11, 12, 401), revoke(20, 30, false))},
		{"in-flight revoke not yet seen, then seen", true,
			h(issue(0, 10), revoke(20, 30, false), validate(21, 22, 200), validate(23, 24, 401), validate(31, 32, 401))},
		{"in-flight revoke seen, then not seen by a later read", false,
			h(issue(0, 10), revoke(20, 30, false), validate(21, 22, 401), validate(23, 24, 200), validate(31, 32, 401))},
		{"overlapping reads may answer either way", true,
			h(issue(0, 10), revoke(20, 30, false), validate(21, 26, 401), validate(22, 27, 200))},
		{"unknown revoke: not seen, then seen", true,
			h(issue(0, 10), revoke(20, 1000, true), validate(40, 41, 200), validate(42, 43, 401))},
		{"unknown revoke: never takes effect", true,
			h(issue(0, 10), revoke(20, 1000, true), validate(40, 41, 200), validate(42, 43, 200))},
		{"unknown revoke: seen, then not seen", false,
			h(issue(0, 10), revoke(20, 1000, true), validate(40, 41, 401), validate(42, 43, 200))},
	} {
		if got := porcupine.CheckOperations(linModel(), tc.ops); got != tc.ok {
			t.Errorf("%s: linearizable=%v, want %v", tc.name, got, tc.ok)
		}
		if !tc.ok {
			res, info := porcupine.CheckOperationsVerbose(linModel(), tc.ops, 0)
			if res != porcupine.Illegal {
				t.Errorf("%s: %v", tc.name, res)
			}
			if err := porcupine.VisualizePath(linModel(), info, filepath.Join(t.TempDir(), "v.html")); err != nil {
				t.Errorf("%s: visualize: %v", tc.name, err)
			}
		}
	}
}
