package cluster

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/tokend/tokend/fsm"
)

// The model the harness checks histories against: plain linearizability
// of each grant, one atomic step per operation, for writes and reads
// alike. A read that overlaps a write must agree with some order of the
// two, and two reads must agree with each other: a revocation one node
// showed must not be missed by a read that starts after that on another.
//
// A grant (the partition key: porcupine checks each on its own) has the
// access token and refresh token of its issue (token 0) and one pair per
// rotation attempt (token j of attempt j). Its state: issued, revoked, the
// current refresh token, and which tokens exist. Every operation's output
// is the fsm outcome (writes) or whether the lookup found the token
// (reads), and the model computes what it must be, as fsm/fsm.go does:
//
//   - issue creates access 0 and refresh 0;
//   - rotate(o→j) with o the current refresh token creates access j and
//     refresh j and makes j current; with o an earlier (rotated-out) one it
//     is reuse: the grant is revoked (RotateRefresh with a grace that never
//     applies); with o unknown, NotFound;
//   - revoke(token) revokes the grant if the token exists (any kind, also
//     a rotated-out refresh token), else NotFound;
//   - a read of access j finds it iff issued, not revoked and created; of
//     refresh j iff not revoked and j is current.
//
// A write whose outcome is unknown (a timeout, an error after it may have
// been sent, a node shut down under it) has no return: its return time is
// the end of the history and its output "unknown", which the model accepts
// with any effect. Porcupine may then place it anywhere after its call,
// including after everything else, where its effect is invisible: so it
// may or may not have happened, at any time after it was sent. Reads that
// could not be served (ReadReady refused) carry no information and are not
// recorded.

type hopKind uint8

const (
	hopIssue hopKind = iota
	hopRotate
	hopRevoke
	hopRead
)

type hInput struct {
	kind    hopKind
	grant   int
	tok     int  // rotate: the refresh token presented; revoke, read: the token
	refresh bool // revoke, read: tok names a refresh token (else access)
	next    int  // rotate: the attempt's new pair
	node    string
}

// hOutput is a write's fsm outcome or a read's answer.
type hOutput struct {
	unknown bool
	outcome fsm.Outcome
	found   bool
}

// hState is one grant. Comparable: porcupine's default Equal is ==.
type hState struct {
	issued, revoked bool
	cur             int8   // current refresh token; -1 none
	access, refresh uint64 // tokens created (bit j: token j)
}

// maxAttempts bounds rotation attempts per grant (tokens are bits of a
// uint64, and fsm keeps maxRetired rotated-out refresh tokens).
const maxAttempts = 24

func hStep(st hState, in hInput, out hOutput) (bool, hState) {
	next, want := hApply(st, in)
	switch {
	case out.unknown:
		return true, next
	case in.kind == hopRead:
		return out.found == want.found, st
	default:
		return out.outcome == want.outcome, next
	}
}

// hApply is what fsm does with in at st: the new state and the output.
func hApply(st hState, in hInput) (hState, hOutput) {
	live := st.issued && !st.revoked
	switch in.kind {
	case hopIssue:
		if st.issued {
			return st, hOutput{outcome: fsm.Exists}
		}
		return hState{issued: true, cur: 0, access: 1, refresh: 1}, hOutput{}
	case hopRotate:
		switch {
		case !live || st.refresh&(1<<in.tok) == 0:
			return st, hOutput{outcome: fsm.NotFound}
		case int(st.cur) != in.tok:
			st.revoked = true
			return st, hOutput{outcome: fsm.Reused}
		}
		st.cur = int8(in.next)
		st.access |= 1 << in.next
		st.refresh |= 1 << in.next
		return st, hOutput{}
	case hopRevoke:
		set := st.access
		if in.refresh {
			set = st.refresh
		}
		if !live || set&(1<<in.tok) == 0 {
			return st, hOutput{outcome: fsm.NotFound}
		}
		st.revoked = true
		return st, hOutput{}
	}
	if in.refresh {
		return st, hOutput{found: live && int(st.cur) == in.tok}
	}
	return st, hOutput{found: live && st.access&(1<<in.tok) != 0}
}

func harnessModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[int][]porcupine.Operation{}
			for _, op := range h {
				g := op.Input.(hInput).grant
				by[g] = append(by[g], op)
			}
			keys := make([]int, 0, len(by))
			for g := range by {
				keys = append(keys, g)
			}
			sort.Ints(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, g := range keys {
				out = append(out, by[g])
			}
			return out
		},
		Init: func() any { return hState{cur: -1} },
		Step: func(state, input, output any) (bool, any) {
			return hStep(state.(hState), input.(hInput), output.(hOutput))
		},
		DescribeOperation: func(input, output any) string {
			return describeOp(input.(hInput), output.(hOutput))
		},
		DescribeState: func(state any) string {
			st := state.(hState)
			switch {
			case !st.issued:
				return "absent"
			case st.revoked:
				return "revoked"
			}
			return fmt.Sprintf("active, refresh %d current, access %b", st.cur, st.access)
		},
	}
}

func describeOp(in hInput, out hOutput) string {
	kind := "access"
	if in.refresh {
		kind = "refresh"
	}
	var b strings.Builder
	switch in.kind {
	case hopIssue:
		fmt.Fprintf(&b, "issue g%d", in.grant)
	case hopRotate:
		fmt.Fprintf(&b, "rotate g%d refresh %d -> %d", in.grant, in.tok, in.next)
	case hopRevoke:
		fmt.Fprintf(&b, "revoke g%d by %s %d", in.grant, kind, in.tok)
	case hopRead:
		fmt.Fprintf(&b, "read g%d %s %d", in.grant, kind, in.tok)
	}
	fmt.Fprintf(&b, " @%s -> ", in.node)
	switch {
	case out.unknown:
		b.WriteString("unknown")
	case in.kind == hopRead && out.found:
		b.WriteString("found")
	case in.kind == hopRead:
		b.WriteString("not found")
	case out.outcome == fsm.OK:
		b.WriteString("ok")
	default:
		b.WriteString(out.outcome.Err().Error())
	}
	return b.String()
}
