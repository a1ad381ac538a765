package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// Internal endpoints, all POST, mounted by the binary under /internal/:
//
//	/internal/apply  body: an encoded fsm command; answer: fsm.EncodeResult
//	/internal/lease  JSON leaseRequest; answer: JSON leaseResponse
//	/internal/leave  JSON {"id"}: remove that server from the configuration
//
// Every request carries X-Tokend-Auth: "<unix nanos>.<base64 HMAC-SHA256>"
// over the endpoint name, the timestamp and the body, keyed by the cluster
// key; requests more than a minute off are refused (replay window). Every
// successful answer carries an HMAC over the request's tag and the answer
// body, so a follower only believes its real leader.
const (
	authHeader   = "X-Tokend-Auth"
	maxBody      = 4 << 20
	authSkew     = time.Minute
	statusNotLdr = http.StatusMisdirectedRequest // 421: not the leader, nothing was proposed
)

func (n *Node) mac(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, n.cfg.ClusterKey)
	var l [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(l[:], uint64(len(p)))
		m.Write(l[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

func (n *Node) signRequest(endpoint string, body []byte) string {
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	return ts + "." + base64.RawURLEncoding.EncodeToString(n.mac([]byte("req"), []byte(endpoint), []byte(ts), body))
}

func (n *Node) verifyRequest(endpoint, tag string, body []byte) error {
	ts, sig, ok := strings.Cut(tag, ".")
	if !ok {
		return errors.New("missing or malformed " + authHeader)
	}
	nanos, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed timestamp")
	}
	if d := time.Since(time.Unix(0, nanos)); d > authSkew || d < -authSkew {
		return errors.New("timestamp outside the replay window (clock skew?)")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, n.mac([]byte("req"), []byte(endpoint), []byte(ts), body)) {
		return errors.New("bad signature (cluster keys differ?)")
	}
	return nil
}

func (n *Node) signResponse(reqTag string, body []byte) string {
	return base64.RawURLEncoding.EncodeToString(n.mac([]byte("resp"), []byte(reqTag), body))
}

// InternalHandler serves the node-to-node endpoints. Mount it under
// /internal/ (with or without stripping the prefix: it dispatches on the
// last path element). Without a cluster key it refuses everything.
func (n *Node) InternalHandler() http.Handler {
	return http.HandlerFunc(n.serveInternal)
}

func (n *Node) serveInternal(w http.ResponseWriter, r *http.Request) {
	if len(n.cfg.ClusterKey) == 0 {
		http.Error(w, "internal API disabled: no cluster key", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	endpoint := path.Base(r.URL.Path)
	switch endpoint {
	case "apply", "lease", "leave":
	default:
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	tag := r.Header.Get(authHeader)
	if err := n.verifyRequest(endpoint, tag, body); err != nil {
		n.log.Warn("cluster: refused internal request", "from", r.RemoteAddr, "endpoint", endpoint, "err", err)
		http.Error(w, "unauthorized: "+err.Error(), http.StatusUnauthorized)
		return
	}
	reply := func(status int, b []byte) {
		w.Header().Set(authHeader, n.signResponse(tag, b))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(status)
		w.Write(b)
	}
	switch endpoint {
	case "apply":
		if n.raft.State() != raft.Leader {
			http.Error(w, "not the leader", statusNotLdr)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), applyTimeout)
		defer cancel()
		res, err := n.applyLeader(ctx, body)
		switch {
		case errors.Is(err, errNotLeader):
			http.Error(w, "not the leader", statusNotLdr)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			reply(http.StatusOK, fsm.EncodeResult(res))
		}
	case "lease":
		var req leaseRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad lease request", http.StatusBadRequest)
			return
		}
		b, _ := json.Marshal(n.grantLease(req))
		reply(http.StatusOK, b)
	case "leave":
		var req struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.ID == "" {
			http.Error(w, "bad leave request", http.StatusBadRequest)
			return
		}
		if n.raft.State() != raft.Leader {
			http.Error(w, "not the leader", statusNotLdr)
			return
		}
		n.markLeft(req.ID)
		if err := n.removeServer(req.ID); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		reply(http.StatusOK, nil)
	}
}

// call POSTs to a peer's internal endpoint and verifies the answer. safe
// reports that the request certainly had no effect (connection refused,
// or the peer is not the leader), so retrying elsewhere cannot duplicate.
func (n *Node) call(ctx context.Context, addr, endpoint string, body []byte, timeout time.Duration) (resp []byte, safe bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL(addr)+"/internal/"+endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, true, err
	}
	tag := n.signRequest(endpoint, body)
	req.Header.Set(authHeader, tag)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := n.httpc.Do(req)
	if err != nil {
		var op *net.OpError
		return nil, errors.As(err, &op) && op.Op == "dial", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, false, err
	}
	switch res.StatusCode {
	case http.StatusOK:
	case statusNotLdr:
		return nil, true, errors.New("peer is not the leader")
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, true, fmt.Errorf("peer refused internal call: %s", bytes.TrimSpace(b))
	default:
		return nil, false, fmt.Errorf("peer answered %d: %s", res.StatusCode, bytes.TrimSpace(b))
	}
	sig, err := base64.RawURLEncoding.DecodeString(res.Header.Get(authHeader))
	if err != nil || !hmac.Equal(sig, n.mac([]byte("resp"), []byte(tag), b)) {
		return nil, false, errors.New("peer answer failed authentication")
	}
	return b, false, nil
}

// forward sends cmd to the leader at addr.
func (n *Node) forward(ctx context.Context, addr string, cmd []byte) (fsm.Result, bool, error) {
	b, safe, err := n.call(ctx, addr, "apply", cmd, applyTimeout)
	if err != nil {
		return fsm.Result{}, safe, unavailable("forward to leader", err)
	}
	res, err := fsm.DecodeResult(b)
	if err != nil {
		return fsm.Result{}, false, unavailable("forward to leader", err)
	}
	return res, false, nil
}

type leaseRequest struct {
	ID      string `json:"id"`
	Applied uint64 `json:"applied"`
	Term    uint64 `json:"term"`
}

type leaseResponse struct {
	Granted bool   `json:"granted"`
	Term    uint64 `json:"term"`
	Leader  string `json:"leader"`
	LeaseMS int64  `json:"lease_ms"`
	Reason  string `json:"reason,omitempty"`
}

// holderLease is the read lease this node holds from a leader: when it
// ends on the node's monotonic clock (Node.sinceStart), counted from the
// renewal's send time less the drift margin. It is atomic because every
// validation on a follower checks it.
type holderLease struct{ until atomic.Int64 }

func (l *holderLease) valid(now int64) bool { return now < l.until.Load() }

// extend moves the end of the lease to until if that is later.
func (l *holderLease) extend(until int64) {
	for {
		cur := l.until.Load()
		if until <= cur || l.until.CompareAndSwap(cur, until) {
			return
		}
	}
}

func (l *holderLease) clear() { l.until.Store(0) }

// leaseLoop renews this node's read lease, reporting its applied index to
// the leader after every apply batch and at least every leaseRenew.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-n.shutdownCh
		cancel()
	}()
	var lastReason string
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		case <-n.pushCh:
		}
		if n.raft.State() == raft.Leader {
			continue
		}
		addr := n.leaderHTTP()
		if addr == "" {
			continue
		}
		sent := n.sinceStart()
		body, _ := json.Marshal(leaseRequest{ID: n.cfg.NodeID, Applied: n.applied.Load(), Term: n.raft.CurrentTerm()})
		b, _, err := n.call(ctx, addr, "lease", body, leaseLength/2)
		var resp leaseResponse
		if err == nil {
			err = json.Unmarshal(b, &resp)
		}
		reason := resp.Reason
		if err != nil {
			reason = err.Error()
		}
		if reason != lastReason && reason != "" {
			n.log.Debug("cluster: lease not renewed", "reason", reason)
		}
		lastReason = reason
		if err == nil && resp.Granted {
			n.lease.extend(sent + int64(time.Duration(resp.LeaseMS)*time.Millisecond-holderMargin))
		}
	}
}
