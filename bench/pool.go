package bench

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// tokenPool holds the pre-issued access tokens. live tokens are read-only
// and drawn at random (validate, introspect); spare tokens are each handed
// out once, to be revoked.
type tokenPool struct {
	live  []string
	spare []string
	next  atomic.Int64
}

// newTokenPool splits toks: the last spareFraction of them become spares.
func newTokenPool(toks []string, spareFraction float64) *tokenPool {
	n := int(float64(len(toks)) * spareFraction)
	if spareFraction > 0 && n == 0 && len(toks) > 0 {
		n = 1
	}
	return &tokenPool{live: toks[:len(toks)-n], spare: toks[len(toks)-n:]}
}

// random returns a live token, or "" when there are none.
func (p *tokenPool) random(r *rand.Rand) string {
	if len(p.live) == 0 {
		return ""
	}
	return p.live[r.IntN(len(p.live))]
}

// take hands out the next spare token exactly once.
func (p *tokenPool) take() (string, bool) {
	i := p.next.Add(1) - 1
	if i >= int64(len(p.spare)) {
		return "", false
	}
	return p.spare[i], true
}

// tokenStack collects tokens issued during a run so later operations (the
// revokes of the mixed scenario) can consume them. It is bounded; pushes
// beyond the bound are dropped.
type tokenStack struct {
	mu   sync.Mutex
	toks []string
	max  int
}

func newTokenStack(max int) *tokenStack { return &tokenStack{max: max} }

func (s *tokenStack) push(t string) {
	s.mu.Lock()
	if len(s.toks) < s.max {
		s.toks = append(s.toks, t)
	}
	s.mu.Unlock()
}

func (s *tokenStack) pop() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.toks) == 0 {
		return "", false
	}
	t := s.toks[len(s.toks)-1]
	s.toks = s.toks[:len(s.toks)-1]
	return t, true
}
