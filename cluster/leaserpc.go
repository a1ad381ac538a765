package cluster

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// leaseRequest is a holder's report to the leader: it has applied
// everything up to Applied, in Term. Encoded as two uvarints and the id.
type leaseRequest struct {
	ID      string
	Applied uint64
	Term    uint64
}

type leaseResponse struct {
	Granted bool
	Term    uint64
	Leader  string
	LeaseMS int64
	Reason  string
}

func (r leaseRequest) encode() []byte {
	b := binary.AppendUvarint(nil, r.Applied)
	b = binary.AppendUvarint(b, r.Term)
	return append(b, r.ID...)
}

func decodeLeaseRequest(b []byte) (leaseRequest, error) {
	var r leaseRequest
	var n int
	if r.Applied, n = binary.Uvarint(b); n <= 0 {
		return r, errors.New("bad lease request")
	}
	b = b[n:]
	if r.Term, n = binary.Uvarint(b); n <= 0 {
		return r, errors.New("bad lease request")
	}
	r.ID = string(b[n:])
	if r.ID == "" {
		return r, errors.New("lease request without a node id")
	}
	return r, nil
}

func (r leaseResponse) encode() []byte {
	var b []byte
	if r.Granted {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, r.Term)
	b = binary.AppendUvarint(b, uint64(max(r.LeaseMS, 0)))
	b = binary.AppendUvarint(b, uint64(len(r.Leader)))
	b = append(b, r.Leader...)
	return append(b, r.Reason...)
}

func decodeLeaseResponse(b []byte) (leaseResponse, error) {
	var r leaseResponse
	bad := errors.New("bad lease response")
	if len(b) < 1 || b[0] > 1 {
		return r, bad
	}
	r.Granted, b = b[0] == 1, b[1:]
	var n int
	if r.Term, n = binary.Uvarint(b); n <= 0 {
		return r, bad
	}
	b = b[n:]
	ms, n := binary.Uvarint(b)
	if n <= 0 || ms > uint64(time.Hour.Milliseconds()) {
		return r, bad
	}
	r.LeaseMS, b = int64(ms), b[n:]
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return r, bad
	}
	b = b[n:]
	r.Leader, r.Reason = string(b[:l]), string(b[l:])
	return r, nil
}

// leaseLoop renews this node's read lease, reporting its applied index to
// the leader after every apply batch and at least every leaseRenew.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	var lastReason string
	var expired int64 // the lease end last counted as an expiry
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		case <-n.pushCh:
		}
		// A lease that ran out is noticed here, before any renewal in
		// this round could extend it.
		if u := n.lease.until.Load(); u != 0 && u != expired && u <= n.sinceStart() {
			n.metrics.leaseExpiries.Inc()
			expired = u
		}
		if n.raft.State() == raft.Leader {
			continue
		}
		if n.disk.check() != nil {
			// raft.db takes no writes, so this node applies nothing new:
			// a renewed lease (granted at the floor) would hold back every
			// acknowledgement that waits for it (diskhealth.go).
			continue
		}
		addr := n.leaderAddr()
		if addr == "" {
			continue
		}
		sent := n.sinceStart()
		n.hop("report sent")
		req := leaseRequest{ID: n.cfg.NodeID, Applied: n.applied.Load(), Term: n.raft.CurrentTerm()}
		b, _, err := n.rpc.call(n.stopCtx, addr, opLease, req.encode(), leaseLength/2)
		var resp leaseResponse
		if err == nil {
			resp, err = decodeLeaseResponse(b)
		}
		reason := resp.Reason
		switch {
		case err != nil:
			reason = err.Error()
			n.metrics.leaseRenewFailures.WithLabelValues("error").Inc()
		case !resp.Granted:
			n.metrics.leaseRenewFailures.WithLabelValues("refused").Inc()
		}
		if reason != lastReason && reason != "" {
			n.log.Debug("cluster: lease not renewed", "reason", reason)
		}
		lastReason = reason
		if err == nil && resp.Granted {
			n.lease.extend(holderUntil(sent, resp.LeaseMS))
		}
	}
}
