package cluster

import (
	"bytes"
	"context"
	"runtime"
	"testing"
)

func TestBatchCodec(t *testing.T) {
	cmds := [][]byte{[]byte("a"), bytes.Repeat([]byte{7}, 300), []byte("xyz")}
	got, err := decodeBatch(encodeBatch(cmds))
	if err != nil || len(got) != len(cmds) {
		t.Fatalf("decodeBatch = %d commands, %v", len(got), err)
	}
	for i := range cmds {
		if !bytes.Equal(got[i], cmds[i]) {
			t.Fatalf("command %d = %q, want %q", i, got[i], cmds[i])
		}
	}
	answers := []batchAnswer{{stOK, []byte{1, 2}}, {stNotLeader, nil}, {stUnavailable, []byte("later")}}
	back, err := decodeBatchAnswers(encodeBatchAnswers(answers), 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range answers {
		if back[i].status != answers[i].status || !bytes.Equal(back[i].payload, answers[i].payload) {
			t.Fatalf("answer %d = %+v, want %+v", i, back[i], answers[i])
		}
	}
	if _, safe, _ := back[1].result(); !safe {
		t.Error("a per-command 'not the leader' is not safe to retry")
	}
	if _, safe, _ := back[2].result(); safe {
		t.Error("a per-command 'unavailable' is safe to retry")
	}
	if _, err := decodeBatchAnswers(encodeBatchAnswers(answers), 2); err == nil {
		t.Error("answer count mismatch accepted")
	}
}

func TestBatchDecodeRejects(t *testing.T) {
	good := encodeBatch([][]byte{[]byte("a"), []byte("b")})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"zero count":     {0},
		"too many":       encodeBatch(make([][]byte, fwdMaxBatch+1)),
		"short":          good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"empty command":  {1, 0},
		"length too big": {1, 200, 1, 'a'},
	} {
		if _, err := decodeBatch(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestForwardNotSentIsSafe: a write that never left the queue may be
// retried elsewhere; one a flusher took may not.
func TestForwardNotSentIsSafe(t *testing.T) {
	n := &Node{shutdownCh: make(chan struct{})}
	f := newForwarder(n) // no flushers: nothing is ever taken
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, safe, err := f.forward(ctx, "peer", []byte("cmd")); err == nil || !safe {
		t.Fatalf("queued write given up: safe=%v err=%v, want a safe error", safe, err)
	}
	if len(f.queue) != 0 {
		t.Fatalf("given-up write left in the queue (%d)", len(f.queue))
	}
	// Taken by a flusher, then given up: the outcome is unknown.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		for len(f.take()) == 0 {
			runtime.Gosched()
		}
		cancel2()
	}()
	if _, safe, err := f.forward(ctx2, "peer", []byte("cmd")); err == nil || safe {
		t.Fatalf("taken write given up: safe=%v err=%v, want an unsafe error", safe, err)
	}
}
