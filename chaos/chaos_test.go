package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tokendBin is the tokend binary the nodes run: $TOKEND_BIN, else built
// from this tree once per test binary (like cmd/tokend's process tests;
// after make build that is a cache hit plus a link).
var tokendBin string

func TestMain(m *testing.M) {
	code, err := withTokend(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func withTokend(m *testing.M) (int, error) {
	if p := os.Getenv("TOKEND_BIN"); p != "" {
		tokendBin = p
		return m.Run(), nil
	}
	dir, err := os.MkdirTemp("", "tokend-chaos-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	tokendBin = filepath.Join(dir, "tokend")
	build := exec.Command("go", "build", "-o", tokendBin, "../cmd/tokend")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("building tokend: %w", err)
	}
	return m.Run(), nil
}

// TestKillsUnderLoad is the short version of make chaos-kill: three
// leader kills, a follower kill and a pause of each kind, under load, then
// every acknowledged write checked on every node. It fails if one is lost
// or contradicted, or if the cluster does not recover within the
// (generous) bounds.
func TestKillsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a three-node cluster and kills it repeatedly")
	}
	var log strings.Builder
	res, err := Run(context.Background(), Config{
		Tokend: tokendBin, Dir: t.TempDir(),
		LeaderKills: 3, FollowerKills: 1, Pauses: 2, PauseFor: 2 * time.Second,
		Timeout: 2 * time.Minute, Log: &log,
	})
	t.Logf("progress:\n%s", log.String())
	t.Logf("summary:\n%s", res.Summary())
	if err != nil {
		t.Fatalf("run not completed: %v", err)
	}
	if !res.OK() {
		t.Fatalf("acknowledged writes lost or contradicted")
	}
	if res.LeaderKills != 3 || res.FollowerKills != 1 || res.Pauses != 2 {
		t.Errorf("faults applied: %d leader kills, %d follower kills, %d pauses", res.LeaderKills, res.FollowerKills, res.Pauses)
	}
	// The check must have had something to check.
	if res.IssuesAcked < 20 || res.RevokesAcked < 5 || res.Checked != res.IssuesAcked {
		t.Errorf("too little acknowledged: %d issues, %d revocations, %d checked", res.IssuesAcked, res.RevokesAcked, res.Checked)
	}
	if len(res.Failovers) != 3 {
		t.Errorf("%d failover times for 3 leader kills", len(res.Failovers))
	}
}

// TestJudge shows the final check can fail: each kind of loss is counted.
func TestJudge(t *testing.T) {
	nodes := []*node{{id: "n1"}, {id: "n2"}, {id: "n3"}}
	ok, no := http.StatusOK, http.StatusUnauthorized
	for _, tc := range []struct {
		name    string
		rec     tokenRec
		answers []int
		want    verdict
	}{
		{"issued, active everywhere", tokenRec{}, []int{ok, ok, ok}, verdict{checked: 1}},
		{"issued, missing on one node", tokenRec{}, []int{ok, no, ok}, verdict{checked: 1, lostIssues: 1}},
		{"revoked everywhere", tokenRec{revoke: revokeAcked}, []int{no, no, no}, verdict{checked: 1}},
		{"revocation lost on one node", tokenRec{revoke: revokeAcked}, []int{no, no, ok}, verdict{checked: 1, lostRevokes: 1}},
		{"unknown revocation, same answers", tokenRec{revoke: revokeUnknown}, []int{ok, ok, ok}, verdict{checked: 1, unknown: 1}},
		{"unknown revocation, answers differ", tokenRec{revoke: revokeUnknown}, []int{ok, no, ok}, verdict{checked: 1, unknown: 1, inconsistent: 1}},
	} {
		var v verdict
		v.judge(tc.rec, tc.answers, nodes)
		v.details = nil
		if fmt.Sprintf("%+v", v) != fmt.Sprintf("%+v", tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, v, tc.want)
		}
	}
}

// TestStaleReads shows the check under load can fail.
func TestStaleReads(t *testing.T) {
	l := newLedger()
	const raw = "secret-token-value"
	rec := l.addIssued(raw)
	l.validated("n1", rec, false, http.StatusOK)
	l.validated("n1", rec, false, http.StatusUnauthorized) // never revoked: stale
	rec.revoke = revokeStarted
	l.validated("n1", rec, false, http.StatusUnauthorized) // in flight: either
	l.validated("n1", rec, false, http.StatusOK)
	l.revokeDone(rec, true)
	l.validated("n1", rec, true, http.StatusOK) // after the acknowledgement: stale
	if l.stale != 2 {
		t.Fatalf("stale reads: %d, want 2 (%v)", l.stale, l.details)
	}
	for _, d := range l.details {
		if strings.Contains(d, raw) {
			t.Errorf("a report line holds the raw token: %s", d)
		}
	}
}

func TestSchedule(t *testing.T) {
	got := schedule(10, 1, 2)
	n := map[fault]int{}
	for _, f := range got {
		n[f]++
	}
	if n[leaderKill] != 10 || n[followerKill] != 1 || n[pauseFollower] != 1 || n[pauseLeader] != 1 {
		t.Fatalf("schedule(10, 1, 2) = %v", got)
	}
	if got[0] != leaderKill || got[len(got)-1] == followerKill && got[len(got)-2] == followerKill {
		t.Errorf("faults not spread: %v", got)
	}
	if got := schedule(3, 1, 2); len(got) != 6 {
		t.Errorf("schedule(3, 1, 2) = %v", got)
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{4, 1, 3, 2}
	if p := percentile(ds, 0.5); p != 2 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(ds, 1); p != 4 {
		t.Errorf("max = %v", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("empty p50 = %v", p)
	}
}
