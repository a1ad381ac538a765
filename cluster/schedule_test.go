package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// A schedule is everything the seed decides: the cluster size, each
// incarnation's clock rate, the sequence of fault phases (kind, targets,
// parameters, durations) and each client worker's sequence of choices.
// What the seed cannot decide is timing: which node leads when a phase
// says "the leader", and how operations interleave with the faults and
// each other. A failing seed reruns the same schedule, which in practice
// brings the same failure back within a few runs (harness_run_test.go
// prints the command).

type faultKind uint8

const (
	fNone          faultKind = iota
	fPartition               // a random minority cut off from the rest, both ways
	fOneWay                  // messages from one node to another lost, not back
	fIsolateLeader           // the leader cut off from everyone
	fLossy                   // every link drops a fraction and delays (reorders) the rest
	fPause                   // a node (the leader half the time) paused for the phase, its messages lost or held
	fRestart                 // a node (the leader half the time) shut down and restarted on its data dir
	fSnapRestart             // a node snapshots (compacting its log), then restarts from that
	fReplace                 // a follower leaves the configuration; a new empty node joins in its place
	nFaults
)

var faultNames = [...]string{"none", "partition", "one-way", "isolate-leader", "lossy", "pause", "restart", "snapshot+restart", "replace"}

func (f faultKind) String() string { return faultNames[f] }

// phase is one fault, held for dur while the workers run.
type phase struct {
	fault    faultKind
	leader   bool  // target whoever leads when the phase starts
	nodes    []int // target slots (fPartition: the minority; fOneWay: from, to)
	dropP    float64
	delayMax time.Duration
	dur      time.Duration
	healThen bool // heal the network after the phase (else faults pile up)
	hold     bool // fPause: messages wait for the resume (else they are lost)
}

type schedule struct {
	seed    uint64
	size    int
	workers int
	phases  []phase
	clocks  *rand.Rand // clock rates, drawn per node start in order
}

// newSchedule derives a schedule from seed. size 0 picks 3 or 5 nodes.
func newSchedule(seed uint64, size int) *schedule {
	r := rand.New(rand.NewPCG(seed, 0x736368))
	if size == 0 {
		size = 3
		if r.IntN(3) == 0 {
			size = 5
		}
	}
	s := &schedule{seed: seed, size: size, workers: 3, clocks: rand.New(rand.NewPCG(seed, 0x636c6b))}
	for range 3 + r.IntN(3) {
		s.phases = append(s.phases, newPhase(r, size))
	}
	return s
}

func newPhase(r *rand.Rand, size int) phase {
	p := phase{
		fault:    faultKind(r.IntN(int(nFaults))),
		leader:   r.IntN(2) == 0,
		dur:      time.Duration(300+r.IntN(900)) * time.Millisecond,
		healThen: r.IntN(3) != 0,
	}
	perm := r.Perm(size)
	switch p.fault {
	case fPartition:
		p.nodes = perm[:1+r.IntN(size/2)]
	case fOneWay:
		p.nodes = perm[:2]
	case fLossy:
		p.dropP = 0.05 + 0.25*r.Float64()
		p.delayMax = time.Duration(1+r.IntN(30)) * time.Millisecond
	case fPause:
		p.nodes, p.hold = perm[:1], r.IntN(2) == 0
	default:
		p.nodes = perm[:1]
	}
	return p
}

// clockRate is the next node start's lease clock rate, 1±clockSkew.
func (s *schedule) clockRate() float64 { return 1 + clockSkew*(2*s.clocks.Float64()-1) }

func (p phase) String() string {
	s := fmt.Sprintf("%s for %v", p.fault, p.dur)
	switch p.fault {
	case fLossy:
		s += fmt.Sprintf(" (drop %.0f%%, delay up to %v)", 100*p.dropP, p.delayMax)
	case fPartition:
		s += fmt.Sprintf(" (slots %v cut off)", p.nodes)
	case fOneWay:
		from := fmt.Sprintf("slot %d", p.nodes[0])
		if p.leader {
			from = "the leader"
		}
		s += fmt.Sprintf(" (from %s to slot %d)", from, p.nodes[1])
	case fPause, fRestart, fSnapRestart:
		if p.hold {
			s += " holding its messages"
		}
		if p.leader {
			s += " (the leader)"
		} else {
			s += fmt.Sprintf(" (slot %d)", p.nodes[0])
		}
	case fReplace:
		s += fmt.Sprintf(" (slot %d, the next if it leads)", p.nodes[0])
	}
	if p.healThen {
		s += ", then heal"
	}
	return s
}

// target is the slot a phase aims at: the leader now, if the phase says
// so and there is one, else its seeded slot.
func (h *harness) target(p phase) int {
	if p.leader {
		if i := h.leaderSlot(); i >= 0 {
			return i
		}
	}
	return p.nodes[0]
}

// leaderSlot is the slot of a running node that believes it leads, or -1.
func (h *harness) leaderSlot() int {
	for i, hn := range h.slots() {
		if n, up := hn.current(); up && n.raft.State().String() == "Leader" {
			return i
		}
	}
	return -1
}

// runPhase injects p's fault, waits out its duration and lifts what does
// not heal by itself (a pause).
func (h *harness) runPhase(ctx context.Context, p phase) error {
	slots := h.slots()
	addr := func(i int) string { slots[i].mu.Lock(); defer slots[i].mu.Unlock(); return slots[i].addr }
	h.log.Info("nemesis: phase", "phase", p.String())
	var err error
	switch p.fault {
	case fPartition:
		in := map[int]bool{}
		for _, i := range p.nodes {
			in[i] = true
		}
		for i := range slots {
			for j := range slots {
				if in[i] != in[j] {
					h.nem.setCut(addr(i), addr(j), true)
				}
			}
		}
	case fOneWay:
		from := p.nodes[0]
		if p.leader {
			from = h.target(p)
		}
		if from != p.nodes[1] {
			h.nem.setCut(addr(from), addr(p.nodes[1]), true)
		}
	case fIsolateLeader:
		if i := h.leaderSlot(); i >= 0 {
			for j := range slots {
				h.nem.setCut(addr(i), addr(j), true)
				h.nem.setCut(addr(j), addr(i), true)
			}
		}
	case fLossy:
		h.nem.setLossy(p.dropP, p.delayMax)
	case fPause:
		hn := slots[h.target(p)]
		hn.pause(p.hold)
		defer hn.unpause()
	case fRestart:
		err = slots[h.target(p)].restart()
	case fSnapRestart:
		hn := slots[h.target(p)]
		if n, up := hn.current(); up {
			if serr := n.Snapshot(); serr != nil {
				h.log.Info("nemesis: snapshot failed", "node", hn.name(), "err", serr)
			}
		}
		err = hn.restart()
	case fReplace:
		// On a healed network: a Leave that cannot reach the leader only
		// times out (and the node is restarted instead).
		h.nem.heal()
		i := p.nodes[0]
		if i == h.leaderSlot() {
			i = (i + 1) % len(slots)
		}
		err = h.replace(ctx, slots[i])
	}
	if err != nil {
		return fmt.Errorf("phase %s: %w", p, err)
	}
	if !sleepCtx(ctx, p.dur) {
		return ctx.Err()
	}
	if p.healThen {
		h.nem.heal()
	}
	return nil
}
