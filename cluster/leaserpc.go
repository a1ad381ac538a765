package cluster

import (
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// leaseRequest is a holder's report to the leader: it has applied
// everything up to Applied, in Term. Encoded as two uvarints and the id
// (opLease); opLeaseFloor puts Want, the floor a reader here waits for
// (0: none), after Term.
type leaseRequest struct {
	ID      string
	Applied uint64
	Term    uint64
	Want    uint64
}

// leaseResponse is the leader's answer. Floor is the leader's published
// visibility floor (visible.go), carried only by opLeaseFloor's encoding.
type leaseResponse struct {
	Granted bool
	Term    uint64
	Leader  string
	LeaseMS int64
	Reason  string
	Floor   uint64
}

// opLeaseFloor is opLease with the visibility floor (visible.go). A leader
// of the previous release answers it as an unknown operation; a follower
// then reports with opLease, as that release did. The old operation
// stays, unchanged, for followers of the previous release.
const opLeaseFloor byte = 8

// Both lease operations share one layout; opLeaseFloor adds a uvarint to
// each direction: the request's Want after Term, the answer's Floor after
// the lease length. withFloor selects the layout.

func (r leaseRequest) encode() []byte      { return r.appendTo(nil, false) }
func (r leaseRequest) encodeFloor() []byte { return r.appendTo(nil, true) }

func (r leaseRequest) appendTo(b []byte, withFloor bool) []byte {
	b = binary.AppendUvarint(b, r.Applied)
	b = binary.AppendUvarint(b, r.Term)
	if withFloor {
		b = binary.AppendUvarint(b, r.Want)
	}
	return append(b, r.ID...)
}

func decodeLeaseRequest(b []byte) (leaseRequest, error)      { return decodeLeaseRequestAs(b, false) }
func decodeLeaseRequestFloor(b []byte) (leaseRequest, error) { return decodeLeaseRequestAs(b, true) }

func decodeLeaseRequestAs(b []byte, withFloor bool) (leaseRequest, error) {
	var r leaseRequest
	bad := errors.New("bad lease request")
	fields := []*uint64{&r.Applied, &r.Term}
	if withFloor {
		fields = append(fields, &r.Want)
	}
	for _, f := range fields {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return r, bad
		}
		*f, b = v, b[n:]
	}
	r.ID = string(b)
	if r.ID == "" {
		return r, errors.New("lease request without a node id")
	}
	return r, nil
}

func (r leaseResponse) encode() []byte      { return r.appendTo(nil, false) }
func (r leaseResponse) encodeFloor() []byte { return r.appendTo(nil, true) }

func (r leaseResponse) appendTo(b []byte, withFloor bool) []byte {
	granted := byte(0)
	if r.Granted {
		granted = 1
	}
	b = append(b, granted)
	b = binary.AppendUvarint(b, r.Term)
	b = binary.AppendUvarint(b, uint64(max(r.LeaseMS, 0)))
	if withFloor {
		b = binary.AppendUvarint(b, r.Floor)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Leader)))
	b = append(b, r.Leader...)
	return append(b, r.Reason...)
}

func decodeLeaseResponse(b []byte) (leaseResponse, error)      { return decodeLeaseResponseAs(b, false) }
func decodeLeaseResponseFloor(b []byte) (leaseResponse, error) { return decodeLeaseResponseAs(b, true) }

func decodeLeaseResponseAs(b []byte, withFloor bool) (leaseResponse, error) {
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
	if withFloor {
		if r.Floor, n = binary.Uvarint(b); n <= 0 {
			return r, bad
		}
		b = b[n:]
	}
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return r, bad
	}
	b = b[n:]
	r.Leader, r.Reason = string(b[:l]), string(b[l:])
	return r, nil
}

// leaseLoop renews this node's read lease, reporting its applied index to
// the leader after every apply batch and at least every leaseRenew, and
// at once (then every floorRetry) while a reader here waits for a floor
// above the one it knows (visible.go).
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var lastReason string
	var expired int64 // the lease end last counted as an expiry
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		case <-n.pushCh:
		case <-retry.C:
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
		reason := n.renewLease(addr)
		if reason != lastReason && reason != "" {
			n.log.Debug("cluster: lease not renewed", "reason", reason)
		}
		lastReason = reason
		if n.vis.want.Load() > n.vis.floor.Load() {
			retry.Reset(floorRetry)
		}
	}
}

// renewLease makes one report to the leader at addr, extends the lease if
// granted and takes the leader's floor. It returns why no lease was
// granted ("" if it was).
func (n *Node) renewLease(addr string) string {
	sent := n.sinceStart()
	n.hop("report sent")
	req := leaseRequest{ID: n.cfg.NodeID, Applied: n.applied.Load(), Term: n.raft.CurrentTerm(), Want: n.vis.want.Load()}
	resp, err := n.leaseCall(addr, req)
	reason := resp.Reason
	switch {
	case err != nil:
		reason = err.Error()
		n.metrics.leaseRenewFailures.WithLabelValues("error").Inc()
	case !resp.Granted:
		n.metrics.leaseRenewFailures.WithLabelValues("refused").Inc()
	}
	if err != nil {
		return reason
	}
	if resp.Granted {
		n.lease.extend(holderUntil(sent, resp.LeaseMS))
	}
	n.raiseFloor(resp.Floor)
	return reason
}

// leaseCall sends req with opLeaseFloor, or with opLease to a leader of
// the previous release (which then sends no floor: 0).
func (n *Node) leaseCall(addr string, req leaseRequest) (leaseResponse, error) {
	if !n.isLegacy(addr) {
		b, _, err := n.rpc.call(n.stopCtx, addr, opLeaseFloor, req.encodeFloor(), leaseLength/2)
		if err == nil {
			n.markLegacy(addr, false)
			return decodeLeaseResponseFloor(b)
		}
		if !unknownOp(err) {
			return leaseResponse{}, err
		}
		n.markLegacy(addr, true)
	}
	b, _, err := n.rpc.call(n.stopCtx, addr, opLease, req.encode(), leaseLength/2)
	if err != nil {
		return leaseResponse{}, err
	}
	return decodeLeaseResponse(b)
}

// unknownOp says whether err is a peer's refusal of an operation it does
// not know (handleRPC's answer in a release without it).
func unknownOp(err error) bool {
	var re *rpcError
	return errors.As(err, &re) && re.status == stBadRequest && strings.HasPrefix(re.msg, "unknown operation")
}
