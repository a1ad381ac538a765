package bench

import (
	"context"
	"sync"
)

// Operation kinds of the visibility scenario. Their latency covers the
// write and the validations that follow it.
const (
	kindIssueCheck  = "issue+validate"
	kindRevokeCheck = "revoke+validate"
)

// visibilityScenario checks the contract's guarantee: once /token returned
// a token every node validates it, and once /revoke returned no node does.
// Each worker alternates: issue a token on one node, then at once validate
// it on every other node (all in parallel); next time, revoke that token on
// the next node and validate on every other node again. An answer that
// contradicts the acknowledged write is stale; a 503 (a node without a read
// lease may answer so) is an error but not stale. With a single node the
// check goes to that node.
func visibilityScenario(e *env) Scenario {
	return Scenario{Name: ScenarioVisibility, Do: func(ctx context.Context, w *worker) outcome {
		writer := w.nextNode(e.nodes)
		if w.pending == "" {
			o, tr := issueCCAt(ctx, e, w, writer)
			o.kind = kindIssueCheck
			if o.class != "" {
				return o
			}
			w.pending = tr.AccessToken
			o.checks, o.stale, o.class = checkEverywhere(ctx, e, writer, tr.AccessToken, true)
			return o
		}
		tok := w.pending
		w.pending = ""
		o := revokeAt(ctx, e, w, writer, tok)
		o.kind = kindRevokeCheck
		if o.class != "" {
			return o
		}
		o.checks, o.stale, o.class = checkEverywhere(ctx, e, writer, tok, false)
		return o
	}}
}

// checkEverywhere validates tok on every node but writer, concurrently, and
// returns how many checks ran, how many were stale, and the op's error class
// ("stale" wins over other errors, "" when all were fresh).
func checkEverywhere(ctx context.Context, e *env, writer node, tok string, wantValid bool) (checks, stale int, class string) {
	others := make([]node, 0, len(e.nodes))
	for _, n := range e.nodes {
		if n.Base != writer.Base {
			others = append(others, n)
		}
	}
	if len(others) == 0 {
		others = append(others, writer)
	}
	verdicts := make([]int, len(others))
	classes := make([]string, len(others))
	var wg sync.WaitGroup
	for i, n := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := do(e.client, newValidateReq(ctx, n, tok), false)
			verdicts[i], classes[i] = judgeVisibility(r, err, wantValid)
		}()
	}
	wg.Wait()
	for i, v := range verdicts {
		checks++
		switch v {
		case verdictStale:
			stale++
			class = "stale"
		case verdictError:
			if class == "" {
				class = classes[i]
			}
		}
	}
	return checks, stale, class
}
