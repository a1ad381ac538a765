package cluster

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type hopEvent struct {
	at        time.Time
	node, hop string
}

// hopLog collects hop events while installed on every node.
type hopLog struct {
	mu     sync.Mutex
	events []hopEvent
}

func (l *hopLog) record(node, hop string) {
	l.mu.Lock()
	l.events = append(l.events, hopEvent{time.Now(), node, hop})
	l.mu.Unlock()
}

func (l *hopLog) take() []hopEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := l.events
	l.events = nil
	return ev
}

// TestWritePathHops traces writes through a follower, one at a time, and
// checks that every write passes its hops in causal order: queued, batch
// sent, received and proposed on the leader, applied there, released by
// the visibility barrier only after both lease-holding followers applied
// it, answered. With -v it logs the mean time between hops (the write-path
// breakdown; TOKEND_HOP_WRITES sets how many writes, default 20).
func TestWritePathHops(t *testing.T) {
	nodes, _ := startCluster(t, 3, time.Minute)
	leader, followers := leaderOf(t, nodes)
	via, other := followers[0], followers[1]
	mustApply(t, via.Node, putClientCmd("c1"))
	waitAllReady(t, nodes)

	writes := 20
	if v, err := strconv.Atoi(os.Getenv("TOKEND_HOP_WRITES")); err == nil && v > 0 {
		writes = v
	}
	log := &hopLog{}
	tr := hopTracer(log.record)
	for _, n := range nodes {
		n.tracer.Store(&tr)
	}
	defer func() {
		for _, n := range nodes {
			n.tracer.Store(nil)
		}
	}()
	L, F, O := leader.cfg.NodeID, via.cfg.NodeID, other.cfg.NodeID
	// The hops of one write, in causal order, as node:hop.
	chain := []string{F + ":forward queued", F + ":batch sent", L + ":batch received", L + ":proposed",
		L + ":applied", L + ":committed and applied", L + ":visible", F + ":forward answered"}
	sums := make([]time.Duration, len(chain))
	var foll, rep time.Duration
	for w := range writes {
		log.take()
		mustApply(t, via.Node, issueCmd("c1", token()))
		ev := log.take()
		at := make([]time.Time, len(chain))
		i := 0
		for _, e := range ev {
			if i < len(chain) && e.node+":"+e.hop == chain[i] {
				at[i] = e.at
				i++
			}
		}
		if i < len(chain) {
			t.Fatalf("write %d: hop %q missing or out of order; events: %s", w, chain[i], formatHops(ev))
		}
		// Both followers hold leases, so the leader's release must come
		// after each of them applied the write (the first apply batch
		// after the proposal).
		visible := at[6]
		for _, id := range []string{F, O} {
			applied := firstHop(ev, id, "applied", at[3])
			if applied.IsZero() || applied.After(visible) {
				t.Fatalf("write %d: released at %v, but %s applied at %v; events: %s", w, visible, id, applied, formatHops(ev))
			}
			if id == F {
				foll += applied.Sub(at[5])
				if r := firstHop(ev, L, "report received", applied); !r.IsZero() {
					rep += r.Sub(applied)
				}
			}
		}
		for k := 1; k < len(chain); k++ {
			sums[k] += at[k].Sub(at[k-1])
		}
	}
	var b strings.Builder
	for k := 1; k < len(chain); k++ {
		fmt.Fprintf(&b, "\n  %-28s -> %-28s %8.1fµs", chain[k-1], chain[k], float64(sums[k].Microseconds())/float64(writes))
	}
	fmt.Fprintf(&b, "\n  (leader applied -> follower %s applied %8.1fµs; follower applied -> its report received %8.1fµs)",
		F, float64(foll.Microseconds())/float64(writes), float64(rep.Microseconds())/float64(writes))
	t.Logf("mean over %d sequential writes through follower %s (leader %s):%s", writes, F, L, b.String())
}

func firstHop(ev []hopEvent, node, hop string, after time.Time) time.Time {
	for _, e := range ev {
		if e.node == node && e.hop == hop && !e.at.Before(after) {
			return e.at
		}
	}
	return time.Time{}
}

func formatHops(ev []hopEvent) string {
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "\n  %s %s %s", e.at.Format("15:04:05.000000"), e.node, e.hop)
	}
	return b.String()
}
