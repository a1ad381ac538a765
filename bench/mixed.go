package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// Operations the mixed scenario can weigh.
const (
	opValidate   = "validate"
	opIssue      = "issue"
	opRevoke     = "revoke"
	opIntrospect = "introspect"
)

// MixEntry is one weighted operation of the mixed scenario.
type MixEntry struct {
	Op     string
	Weight float64
}

// ParseMix parses "validate=95,issue=4,revoke=1". Weights are non-negative
// numbers, need not sum to 100, and at least one must be positive. The
// result is sorted by operation name so picking is deterministic for a
// given random source.
func ParseMix(s string) ([]MixEntry, error) {
	seen := map[string]bool{}
	var out []MixEntry
	total := 0.0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		op, w, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--mix: %q is not op=weight", part)
		}
		op = strings.TrimSpace(op)
		if op == "issue-cc" {
			op = opIssue
		}
		switch op {
		case opValidate, opIssue, opRevoke, opIntrospect:
		default:
			return nil, fmt.Errorf("--mix: unknown operation %q (want validate, issue, revoke, introspect)", op)
		}
		if seen[op] {
			return nil, fmt.Errorf("--mix: %q given twice", op)
		}
		seen[op] = true
		wf, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || wf < 0 || wf != wf || wf > 1e9 {
			return nil, fmt.Errorf("--mix: bad weight %q for %s", w, op)
		}
		total += wf
		out = append(out, MixEntry{Op: op, Weight: wf})
	}
	if total <= 0 {
		return nil, fmt.Errorf("--mix %q: at least one weight must be positive", s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Op < out[j].Op })
	return out, nil
}

// mixPicker picks operations with probability proportional to their weight.
type mixPicker struct {
	ops []string
	cum []float64 // cumulative weights, last = total
}

func newMixPicker(entries []MixEntry) *mixPicker {
	p := &mixPicker{}
	sum := 0.0
	for _, e := range entries {
		if e.Weight == 0 {
			continue
		}
		sum += e.Weight
		p.ops = append(p.ops, e.Op)
		p.cum = append(p.cum, sum)
	}
	return p
}

func (p *mixPicker) pick(r *rand.Rand) string {
	x := r.Float64() * p.cum[len(p.cum)-1]
	for i, c := range p.cum {
		if x < c {
			return p.ops[i]
		}
	}
	return p.ops[len(p.ops)-1]
}

// weight returns the share (0..1) of op in the mix.
func (p *mixPicker) share(op string) float64 {
	prev := 0.0
	for i, o := range p.ops {
		if o == op {
			return (p.cum[i] - prev) / p.cum[len(p.cum)-1]
		}
		prev = p.cum[i]
	}
	return 0
}

// mixedScenario weighs validate / issue / revoke / introspect. Tokens it
// issues are pushed onto a stack that its revokes consume first; when that
// is empty, revokes take reserved spare tokens from the seeded pool (never
// the live tokens that validations draw from), and when those run out too
// the revoke turns into an issue.
func mixedScenario(e *env, entries []MixEntry) Scenario {
	p := newMixPicker(entries)
	return Scenario{Name: ScenarioMixed, Do: func(ctx context.Context, w *worker) outcome {
		switch p.pick(w.rng) {
		case opValidate:
			return validateOp(ctx, e, w)
		case opIntrospect:
			return introspectOp(ctx, e, w)
		case opRevoke:
			if tok, ok := e.issued.pop(); ok {
				return revokeToken(ctx, e, w, tok)
			}
			if tok, ok := e.pool.take(); ok {
				return revokeToken(ctx, e, w, tok)
			}
			fallthrough
		default: // opIssue
			o, tr := issueCC(ctx, e, w)
			if o.class == "" {
				e.issued.push(tr.AccessToken)
			}
			return o
		}
	}}
}
