package chaos

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// load runs the workers that issue, revoke and validate tokens on all
// nodes until stopped.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startLoad starts n workers against nodes. Each mostly picks a node that
// is up and not paused, as a load balancer with health checks would, and
// sometimes any node, so clients also see what a crashed or stalled node
// looks like.
func startLoad(parent context.Context, n int, nodes []*node, c *oauthClient, seed uint64) *load {
	ctx, cancel := context.WithCancel(parent)
	ld := &load{cancel: cancel}
	for w := 0; w < n; w++ {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			worker(ctx, rng, nodes, c)
		}()
	}
	return ld
}

// stop ends the load and waits for every request in flight to return.
func (ld *load) stop() {
	ld.cancel()
	ld.wg.Wait()
}

func worker(ctx context.Context, rng *rand.Rand, nodes []*node, c *oauthClient) {
	for ctx.Err() == nil {
		nd := pickNode(rng, nodes)
		var ok bool
		switch x := rng.Float64(); {
		case x < 0.4:
			ok = c.issue(ctx, nd, "issue") != nil
		case x < 0.6:
			ok = revokeOne(ctx, rng, nd, c)
		default:
			ok = validateOne(ctx, rng, nd, c)
		}
		// Pace the load so three nodes fit on two busy cores without
		// starving Raft's heartbeats; back off after a failure (a killed
		// node refuses at once).
		d := time.Duration(5+rng.IntN(10)) * time.Millisecond
		if !ok {
			d += 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

func pickNode(rng *rand.Rand, nodes []*node) *node {
	if rng.IntN(10) > 0 {
		var up []*node
		for _, nd := range nodes {
			if nd.serving() {
				up = append(up, nd)
			}
		}
		if len(up) > 0 {
			return up[rng.IntN(len(up))]
		}
	}
	return nodes[rng.IntN(len(nodes))]
}

func revokeOne(ctx context.Context, rng *rand.Rand, nd *node, c *oauthClient) bool {
	rec := c.ledger.takeForRevoke(rng)
	if rec == nil {
		return c.issue(ctx, nd, "issue") != nil
	}
	return c.revoke(ctx, nd, rec)
}

func validateOne(ctx context.Context, rng *rand.Rand, nd *node, c *oauthClient) bool {
	rec, revokedBefore := c.ledger.pickRecent(rng)
	if rec == nil {
		return c.issue(ctx, nd, "issue") != nil
	}
	code, err := c.validate(ctx, nd, rec.tok)
	if ctx.Err() != nil {
		return false // stopping: the answer says nothing
	}
	switch {
	case err == nil && (code == http.StatusOK || code == http.StatusUnauthorized):
		c.ledger.answer("validate ok", false)
		c.ledger.validated(nd.id, rec, revokedBefore, code)
		return true
	default:
		c.ledger.answer("validate "+class(code, err), unexpectedAnswer(code, err))
		return false
	}
}
