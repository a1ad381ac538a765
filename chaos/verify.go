package chaos

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// verdict is the final check's outcome.
type verdict struct {
	checked      int // tokens checked on every node
	lostIssues   int // acknowledged issue, not active somewhere
	lostRevokes  int // acknowledged revocation, active somewhere
	unknown      int // tokens whose revocation's outcome was unknown
	inconsistent int // unknown ones answered differently by the nodes
	details      []string
}

// verify validates every recorded token on every node; see the package
// doc for what each must answer. The caller has stopped the load and had a
// write acknowledged after it, so every node that serves reads has applied
// everything committed.
func (r *runner) verify(ctx context.Context) (verdict, error) {
	toks := r.led.snapshot()
	var (
		v    verdict
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan int)
		errs []error
	)
	for w := 0; w < r.cfg.VerifyWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				answers, err := r.answers(ctx, toks[i].tok)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("token #%d: %w", i, err))
				} else {
					v.judge(toks[i], answers, r.c.nodes)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range toks {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return v, fmt.Errorf("%d tokens could not be checked, the first: %w", len(errs), errs[0])
	}
	return v, ctx.Err()
}

// answers validates tok on each node, retrying a node that answers 503 or
// not at all (it may still be catching up) within cfg.Timeout.
func (r *runner) answers(ctx context.Context, tok string) ([]int, error) {
	out := make([]int, len(r.c.nodes))
	for i, nd := range r.c.nodes {
		err := poll(ctx, r.cfg.Timeout, "an answer from "+nd.id, func() error {
			code, err := r.oc.validate(ctx, nd, tok)
			if err != nil {
				return err
			}
			if code != http.StatusOK && code != http.StatusUnauthorized {
				return fmt.Errorf("/validate %d", code)
			}
			out[i] = code
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (v *verdict) judge(t tokenRec, answers []int, nodes []*node) {
	v.checked++
	want := 0
	switch t.revoke {
	case revokeNone:
		want = http.StatusOK
	case revokeAcked:
		want = http.StatusUnauthorized
	default: // revokeUnknown; revokeStarted cannot remain once the load stopped
		v.unknown++
		for _, a := range answers[1:] {
			if a != answers[0] {
				v.inconsistent++
				v.detail(fmt.Sprintf("token #%d (revocation outcome unknown): answers differ: %s", t.idx, describe(answers, nodes)))
				return
			}
		}
		return
	}
	for _, a := range answers {
		if a == want {
			continue
		}
		if want == http.StatusOK {
			v.lostIssues++
			v.detail(fmt.Sprintf("LOST issue: token #%d acknowledged as issued, never revoked: %s", t.idx, describe(answers, nodes)))
		} else {
			v.lostRevokes++
			v.detail(fmt.Sprintf("LOST revocation: token #%d revocation acknowledged %s: %s",
				t.idx, t.revokeAt.UTC().Format(time.RFC3339Nano), describe(answers, nodes)))
		}
		return
	}
}

func (v *verdict) detail(s string) {
	if len(v.details) < maxDetails {
		v.details = append(v.details, s)
	}
}

func describe(answers []int, nodes []*node) string {
	s := ""
	for i, a := range answers {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", nodes[i].id, a)
	}
	return s
}
