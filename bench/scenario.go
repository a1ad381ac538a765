package bench

import (
	"context"
	"math/rand/v2"
	"net/http"
	"time"
)

// outcome is what one operation reports to the runner.
type outcome struct {
	kind  string // operation kind, for per-operation statistics
	class string // "" on success, else an error class ("401", "timeout", "stale", ...)
	stop  bool   // the scenario cannot continue (e.g. its token pool is used up)

	// Visibility only: validations made after the write and how many of
	// them contradicted it.
	checks, stale int
}

// Scenario is a named operation. Do is called concurrently by many workers;
// everything mutable it needs lives in the worker or in env's synchronized
// structures.
type Scenario struct {
	Name string
	Do   func(ctx context.Context, w *worker) outcome
}

// env is the shared, read-mostly state scenarios draw from.
type env struct {
	nodes  []node
	client *http.Client // net/http, for what is not the load (visibility's fan-out)
	// timeout bounds each request of the workers' wire clients.
	timeout time.Duration
	creds   creds
	users   []user
	pool    *tokenPool
	issued  *tokenStack // tokens issued during the run (mixed)
	chains  chan string // refresh-token chains (refresh)
}

// worker is one load goroutine's private state.
type worker struct {
	id     int
	rng    *rand.Rand
	cursor int

	// visibility: the token this worker issued and has not yet revoked.
	pending string

	wire *wireClient // this worker's connections, made on first use
}

// send does req on the worker's own connections (wire.go). The first call
// binds them to ctx: the runner passes every request the run's context.
func (w *worker) send(ctx context.Context, e *env, req request, keepBody bool) (response, error) {
	if w.wire == nil {
		w.wire = newWireClient(ctx, e.timeout)
	}
	return w.wire.do(&req, keepBody)
}

// close closes the worker's connections.
func (w *worker) close() {
	if w.wire != nil {
		w.wire.close()
	}
}

func newWorker(id int, seed uint64) *worker {
	return &worker{id: id, cursor: id, rng: rand.New(rand.NewPCG(seed, uint64(id)))}
}

// nextNode spreads a worker's requests round-robin over the nodes, each
// worker starting at a different one.
func (w *worker) nextNode(nodes []node) node {
	n := nodes[w.cursor%len(nodes)]
	w.cursor++
	return n
}

func validateOp(ctx context.Context, e *env, w *worker) outcome {
	tok := e.pool.random(w.rng)
	r, err := w.send(ctx, e, validateRequest(w.nextNode(e.nodes), tok), false)
	return outcome{kind: opValidate, class: judgeStatus(r, err, http.StatusOK)}
}

func introspectOp(ctx context.Context, e *env, w *worker) outcome {
	tok := e.pool.random(w.rng)
	r, err := w.send(ctx, e, introspectRequest(w.nextNode(e.nodes), e.creds, tok), true)
	return outcome{kind: opIntrospect, class: judgeIntrospect(r, err)}
}

func issueCC(ctx context.Context, e *env, w *worker) (outcome, tokenResponse) {
	return issueCCAt(ctx, e, w, w.nextNode(e.nodes))
}

func issueCCAt(ctx context.Context, e *env, w *worker, n node) (outcome, tokenResponse) {
	r, err := w.send(ctx, e, issueCCRequest(n, e.creds), true)
	tr, class := judgeToken(r, err, false)
	return outcome{kind: opIssue, class: class}, tr
}

func issuePassword(ctx context.Context, e *env, w *worker) (outcome, tokenResponse) {
	u := e.users[w.rng.IntN(len(e.users))]
	r, err := w.send(ctx, e, issuePasswordRequest(w.nextNode(e.nodes), e.creds, u), true)
	tr, class := judgeToken(r, err, true)
	return outcome{kind: ScenarioIssuePassword, class: class}, tr
}

func revokeToken(ctx context.Context, e *env, w *worker, tok string) outcome {
	return revokeAt(ctx, e, w, w.nextNode(e.nodes), tok)
}

func revokeAt(ctx context.Context, e *env, w *worker, n node, tok string) outcome {
	r, err := w.send(ctx, e, revokeRequest(n, e.creds, tok), false)
	return outcome{kind: opRevoke, class: judgeStatus(r, err, http.StatusOK)}
}

// refreshOp takes a refresh-token chain, rotates it and puts the new refresh
// token back. A failed rotation loses the chain; when no chain is free the
// worker starts a new one with a password grant (recorded as
// issue-password).
func refreshOp(ctx context.Context, e *env, w *worker) outcome {
	select {
	case rt := <-e.chains:
		r, err := w.send(ctx, e, refreshRequest(w.nextNode(e.nodes), e.creds, rt), true)
		tr, class := judgeToken(r, err, true)
		if class == "" {
			select {
			case e.chains <- tr.RefreshToken:
			default:
			}
		}
		return outcome{kind: ScenarioRefresh, class: class}
	default:
		o, tr := issuePassword(ctx, e, w)
		if o.class == "" {
			select {
			case e.chains <- tr.RefreshToken:
			default:
			}
		}
		return o
	}
}

// newScenario returns the named scenario over env. Baseline is validate
// against the in-process baseline server.
func newScenario(name string, e *env, mix []MixEntry) Scenario {
	switch name {
	case ScenarioIntrospect:
		return Scenario{Name: name, Do: func(ctx context.Context, w *worker) outcome { return introspectOp(ctx, e, w) }}
	case ScenarioIssueCC, ScenarioIssueCCJWT:
		return Scenario{Name: name, Do: func(ctx context.Context, w *worker) outcome {
			o, _ := issueCC(ctx, e, w)
			return o
		}}
	case ScenarioIssuePassword:
		return Scenario{Name: name, Do: func(ctx context.Context, w *worker) outcome {
			o, _ := issuePassword(ctx, e, w)
			return o
		}}
	case ScenarioRefresh:
		return Scenario{Name: name, Do: func(ctx context.Context, w *worker) outcome { return refreshOp(ctx, e, w) }}
	case ScenarioRevoke:
		return Scenario{Name: name, Do: func(ctx context.Context, w *worker) outcome {
			tok, ok := e.pool.take()
			if !ok {
				return outcome{kind: opRevoke, stop: true}
			}
			return revokeToken(ctx, e, w, tok)
		}}
	case ScenarioMixed:
		return mixedScenario(e, mix)
	case ScenarioVisibility:
		return visibilityScenario(e)
	default: // validate, baseline
		return Scenario{Name: name, Do: func(ctx context.Context, w *worker) outcome { return validateOp(ctx, e, w) }}
	}
}
