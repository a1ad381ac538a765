package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// Write forwarding with group commit.
//
// A follower does not send each write to the leader on its own: Apply
// queues the command, and a few flusher goroutines (fwdFlushers) each take
// everything queued for the leader at that moment (up to fwdMaxBatch
// commands or fwdMaxBytes) and send it as one opApplyBatch frame. A write
// arriving while every flusher is busy waits for the next flush, which
// then carries it together with whatever else arrived meanwhile: the
// batch grows with the load, and a lone write leaves at once (no timer).
// The leader proposes the batch's commands back to back (raft.Apply each,
// so BatchApplyCh and MaxAppendEntries put them into one log write and one
// AppendEntries), waits once for all of them, then once for the visibility
// barrier of the highest index (acknowledgement is monotone in the index),
// and answers every command with the status and payload opApply would
// have given it.
//
// The retry rule is kept per command: a command may be retried elsewhere
// only when nothing can have proposed it: it never left the queue, no
// connection could be made, the whole frame was refused as "not the
// leader", or its own entry says "not the leader" (raft refused to
// enqueue it). Everything else is an unsafe failure.
const (
	fwdFlushers = 4
	fwdMaxBatch = 256
	fwdMaxBytes = 1 << 20
)

// forwarder queues a follower's writes for the leader.
type forwarder struct {
	n    *Node
	kick chan struct{} // a flusher should look at the queue

	mu    sync.Mutex
	queue []*fwdCall
}

// fwdCall is one forwarded write.
type fwdCall struct {
	addr  string
	cmd   []byte
	taken bool // a flusher took it (under forwarder.mu): it may be proposed

	res  fsm.Result
	safe bool
	err  error
	done chan struct{}
}

func newForwarder(n *Node) *forwarder {
	return &forwarder{n: n, kick: make(chan struct{}, 1)}
}

// start runs the flushers until the node shuts down.
func (f *forwarder) start() {
	f.n.wg.Add(fwdFlushers)
	for range fwdFlushers {
		go f.flushLoop()
	}
}

// forward sends cmd to the leader at addr in the next batch and returns
// its result. safe reports that cmd certainly was not proposed.
func (f *forwarder) forward(ctx context.Context, addr string, cmd []byte) (fsm.Result, bool, error) {
	n := f.n
	n.hop("forward queued")
	c := &fwdCall{addr: addr, cmd: cmd, done: make(chan struct{})}
	f.mu.Lock()
	f.queue = append(f.queue, c)
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default: // a kick is pending already
	}
	err := ErrShutdown
	select {
	case <-c.done:
		n.hop("forward answered")
		return c.res, c.safe, c.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-n.shutdownCh: // the flushers may be gone already
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !c.taken {
		for i, q := range f.queue {
			if q == c {
				f.queue = append(f.queue[:i], f.queue[i+1:]...)
				break
			}
		}
		return fsm.Result{}, true, unavailable("forward to leader", err)
	}
	return fsm.Result{}, false, unavailable("forward to leader", err)
}

func (f *forwarder) flushLoop() {
	defer f.n.wg.Done()
	for {
		select {
		case <-f.n.shutdownCh:
			f.failQueued()
			return
		case <-f.kick:
		}
		for {
			batch := f.take()
			if len(batch) == 0 {
				break
			}
			// Others may have queued meanwhile: let an idle flusher
			// carry them while this one waits for its answer.
			f.mu.Lock()
			more := len(f.queue) > 0
			f.mu.Unlock()
			if more {
				select {
				case f.kick <- struct{}{}:
				default:
				}
			}
			f.send(batch)
		}
	}
}

// take removes the next batch from the queue: calls for the same leader
// address as the first, within the size limits.
func (f *forwarder) take() []*fwdCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return nil
	}
	addr := f.queue[0].addr
	var batch []*fwdCall
	rest := f.queue[:0]
	size := 0
	for _, c := range f.queue {
		if c.addr != addr || len(batch) == fwdMaxBatch || (size+len(c.cmd) > fwdMaxBytes && len(batch) > 0) {
			rest = append(rest, c)
			continue
		}
		c.taken = true
		size += len(c.cmd)
		batch = append(batch, c)
	}
	clear(f.queue[len(rest):])
	f.queue = rest
	return batch
}

// failQueued answers every call still queued at shutdown (safe: none was
// sent).
func (f *forwarder) failQueued() {
	f.mu.Lock()
	q := f.queue
	f.queue = nil
	f.mu.Unlock()
	for _, c := range q {
		c.safe, c.err = true, unavailable("forward to leader", ErrShutdown)
		close(c.done)
	}
}

// send makes one opApplyBatch call for batch and answers every call in it.
func (f *forwarder) send(batch []*fwdCall) {
	defer func() {
		for _, c := range batch {
			close(c.done)
		}
	}()
	cmds := make([][]byte, len(batch))
	for i, c := range batch {
		cmds[i] = c.cmd
	}
	addr := batch[0].addr
	f.n.metrics.fwdBatch.Observe(float64(len(batch)))
	f.n.hop("batch sent")
	b, safe, err := f.n.rpc.call(f.n.stopCtx, addr, opApplyBatch, encodeBatch(cmds), applyTimeout)
	var re *rpcError
	if errors.As(err, &re) && re.status == stBadRequest {
		// A leader that predates opApplyBatch refuses the operation before
		// looking at it: nothing was proposed, so one call each is safe.
		for _, c := range batch {
			c.res, c.safe, c.err = f.n.forwardOne(f.n.stopCtx, addr, c.cmd)
		}
		return
	}
	var answers []batchAnswer
	if err == nil {
		answers, err = decodeBatchAnswers(b, len(batch))
	}
	if err != nil {
		for _, c := range batch {
			c.safe, c.err = safe, unavailable("forward to leader", err)
		}
		return
	}
	for i, c := range batch {
		c.res, c.safe, c.err = answers[i].result()
	}
}

// forwardOne sends cmd alone as an opApply call.
func (n *Node) forwardOne(ctx context.Context, addr string, cmd []byte) (fsm.Result, bool, error) {
	b, safe, err := n.rpc.call(ctx, addr, opApply, cmd, applyTimeout)
	if err != nil {
		return fsm.Result{}, safe, unavailable("forward to leader", err)
	}
	res, err := fsm.DecodeResult(b)
	if err != nil {
		return fsm.Result{}, false, unavailable("forward to leader", err)
	}
	return res, false, nil
}

// batchAnswer is the leader's answer for one command of a batch: what
// opApply would have answered, status and payload.
type batchAnswer struct {
	status  byte
	payload []byte
}

func (a batchAnswer) result() (fsm.Result, bool, error) {
	if a.status != stOK {
		err := &rpcError{status: a.status, msg: string(a.payload)}
		return fsm.Result{}, a.status == stNotLeader, unavailable("forward to leader", err)
	}
	res, err := fsm.DecodeResult(a.payload)
	if err != nil {
		return fsm.Result{}, false, unavailable("forward to leader", err)
	}
	return res, false, nil
}

// applyBatch proposes cmds back to back, waits for all of them, then once
// for the visibility barrier of the highest applied index. It fails as a
// whole (errNotLeader) only when this node is not the leader, before
// proposing anything.
func (n *Node) applyBatch(ctx context.Context, cmds [][]byte) ([]batchAnswer, error) {
	ls := n.leader.Load()
	if ls == nil {
		return nil, errNotLeader
	}
	n.hop("batch received")
	timeout := applyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	fs := make([]raft.ApplyFuture, len(cmds))
	for i, c := range cmds {
		fs[i] = n.raft.Apply(c, timeout)
	}
	n.hop("proposed")
	out := make([]batchAnswer, len(cmds))
	if err := awaitAll(ctx, fs); err != nil {
		msg := []byte(unavailable("apply", ErrTimeout).Error())
		for i := range out {
			out[i] = batchAnswer{stUnavailable, msg}
		}
		return out, nil
	}
	results := make([]fsm.Result, len(cmds))
	var top uint64
	for i, f := range fs {
		res, err := applyResult(f, f.Error())
		switch {
		case errors.Is(err, errNotLeader):
			out[i].status = stNotLeader
		case err != nil:
			out[i] = batchAnswer{stUnavailable, []byte(err.Error())}
		default:
			results[i], top = res, max(top, f.Index())
		}
	}
	if top == 0 {
		return out, nil
	}
	n.hop("committed and applied")
	verr := n.waitVisible(ctx, ls, top)
	n.hop("visible")
	for i := range out {
		switch {
		case out[i].status != stOK || out[i].payload != nil:
		case verr != nil:
			out[i] = batchAnswer{stUnavailable, []byte(verr.Error())}
		default:
			out[i].payload = fsm.EncodeResult(results[i])
		}
	}
	return out, nil
}

// awaitAll waits for every future, or returns ctx's error if ctx ends
// first. One goroutine per batch waits for them in order (see await for
// why nothing blocks on a future without a way out).
func awaitAll(ctx context.Context, fs []raft.ApplyFuture) error {
	done := make(chan struct{})
	go func() {
		for _, f := range fs {
			f.Error()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// encodeBatch writes a uvarint count, then each command as a uvarint
// length and its bytes.
func encodeBatch(cmds [][]byte) []byte {
	size := binary.MaxVarintLen32
	for _, c := range cmds {
		size += binary.MaxVarintLen32 + len(c)
	}
	b := binary.AppendUvarint(make([]byte, 0, size), uint64(len(cmds)))
	for _, c := range cmds {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b
}

func decodeBatch(b []byte) ([][]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count == 0 || count > fwdMaxBatch {
		return nil, errors.New("bad batch: count")
	}
	b = b[n:]
	cmds := make([][]byte, 0, count)
	for range count {
		l, n := binary.Uvarint(b)
		if n <= 0 || l == 0 || l > uint64(len(b)-n) {
			return nil, errors.New("bad batch: command length")
		}
		cmds = append(cmds, b[n:n+int(l)])
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("bad batch: trailing bytes")
	}
	return cmds, nil
}

// encodeBatchAnswers writes a uvarint count, then per command its status
// byte, a uvarint length and the payload.
func encodeBatchAnswers(as []batchAnswer) []byte {
	size := binary.MaxVarintLen32
	for _, a := range as {
		size += 1 + binary.MaxVarintLen32 + len(a.payload)
	}
	b := binary.AppendUvarint(make([]byte, 0, size), uint64(len(as)))
	for _, a := range as {
		b = append(b, a.status)
		b = binary.AppendUvarint(b, uint64(len(a.payload)))
		b = append(b, a.payload...)
	}
	return b
}

func decodeBatchAnswers(b []byte, want int) ([]batchAnswer, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count != uint64(want) {
		return nil, fmt.Errorf("bad batch answer: %d answers for %d commands", count, want)
	}
	b = b[n:]
	out := make([]batchAnswer, 0, want)
	for range want {
		if len(b) < 1 {
			return nil, errors.New("bad batch answer: short")
		}
		st := b[0]
		l, n := binary.Uvarint(b[1:])
		if n <= 0 || l > uint64(len(b)-1-n) {
			return nil, errors.New("bad batch answer: payload length")
		}
		out = append(out, batchAnswer{st, b[1+n : 1+n+int(l)]})
		b = b[1+n+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("bad batch answer: trailing bytes")
	}
	return out, nil
}
