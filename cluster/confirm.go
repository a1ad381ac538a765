package cluster

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/hashicorp/raft"
)

// Confirming leadership for the leader's read window (doc.go, point 4).
//
// raft.VerifyLeader is not enough on its own: hashicorp/raft counts, for a
// pending verification, every successful heartbeat or append response
// that arrives while it waits, including the answer to a message sent
// before the verification began. A leader paused (SIGSTOP, a VM stall)
// with a heartbeat in flight finds that heartbeat's answer, given before
// the pause, in its socket on resuming; a verification started just after
// the resume then succeeds at once, and the leader would answer reads
// from stale memory for a whole read window while a successor has been
// acknowledging writes (the linearizability test in cmd/tokend caught it).
//
// So the leader asks every other voter itself, over the internal port,
// with a message sent after the check began (opConfirm): "what is your
// current term?". A voter answering at most this leader's term had not
// voted in a later term when it answered, which was after the check
// began. With the leader, a quorum of such voters means any successor
// won its election after the check began, which is what the read window
// needs. A voter of the previous release does not know opConfirm; with
// one of those in the configuration the leader falls back to
// raft.VerifyLeader, as that release did.

// opConfirm: payload the leader's term (uvarint); answer the peer's
// current term (uvarint).
const opConfirm byte = 9

// errNotConfirmed: too few voters confirmed the term.
var errNotConfirmed = errors.New("leadership not confirmed by a quorum")

// confirmLeadership returns nil when a quorum of voters, this node
// included, had not left term at some instant after the call began.
func (n *Node) confirmLeadership(ctx context.Context, term uint64) error {
	if n.rpc == nil {
		return await(ctx, n.raft.VerifyLeader()) // alone: a quorum of one
	}
	f := n.raft.GetConfiguration()
	if err := await(ctx, f); err != nil {
		return err
	}
	voters := 0
	var peers []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) != n.cfg.NodeID {
			peers = append(peers, string(s.Address))
		}
	}
	need := voters/2 + 1 - 1 // this node is one of the quorum
	if need <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, leaderReadWindow/2)
	defer cancel()
	type answer struct{ yes, legacy bool }
	answers := make(chan answer, len(peers))
	payload := binary.AppendUvarint(nil, term)
	for _, addr := range peers {
		go func() {
			b, _, err := n.rpc.call(ctx, addr, opConfirm, payload, leaderReadWindow/2)
			if err != nil {
				answers <- answer{legacy: unknownOp(err)}
				return
			}
			t, k := binary.Uvarint(b)
			answers <- answer{yes: k > 0 && t <= term}
		}()
	}
	yes, legacy := 0, false
	for range peers {
		a := <-answers
		if a.yes {
			if yes++; yes >= need {
				return nil
			}
		}
		legacy = legacy || a.legacy
	}
	if legacy {
		return await(ctx, n.raft.VerifyLeader())
	}
	return errNotConfirmed
}

// serveConfirm answers opConfirm with this node's current term.
func (n *Node) serveConfirm(payload []byte) (byte, []byte) {
	if _, k := binary.Uvarint(payload); k <= 0 {
		return stBadRequest, []byte("bad confirm request")
	}
	return stOK, binary.AppendUvarint(nil, n.raft.CurrentTerm())
}
