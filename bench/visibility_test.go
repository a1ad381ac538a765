package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// visibilityEnv builds n fake nodes over one store; nodes after the first
// lag behind by lag. It returns the env with a registered client.
func visibilityEnv(t *testing.T, n int, lag time.Duration, lagging bool) *env {
	t.Helper()
	st := newFakeStore("adm")
	st.lag = lag
	var nodes []node
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(&fakeNode{s: st, lagging: lagging && i > 0})
		t.Cleanup(srv.Close)
		nodes = append(nodes, newNode(srv.URL))
	}
	st.clients["cid"] = "sec"
	return &env{nodes: nodes, client: newHTTPClient(4, 5*time.Second), creds: newCreds("cid", "sec")}
}

func runVisibility(t *testing.T, e *env, ops int) (checks, stale int, classes map[string]int) {
	t.Helper()
	sc := visibilityScenario(e)
	w := newWorker(0, 1)
	classes = map[string]int{}
	for i := 0; i < ops; i++ {
		o := sc.Do(context.Background(), w)
		checks += o.checks
		stale += o.stale
		classes[o.class]++
		if want := []string{kindIssueCheck, kindRevokeCheck}[i%2]; o.kind != want {
			t.Fatalf("op %d kind %q, want %q (issue and revoke alternate)", i, o.kind, want)
		}
	}
	return
}

func TestVisibilityNoStaleWhenConsistent(t *testing.T) {
	e := visibilityEnv(t, 3, 0, false)
	checks, stale, classes := runVisibility(t, e, 20)
	if checks != 20*2 {
		t.Fatalf("checks = %d, want 40 (two other nodes per op)", checks)
	}
	if stale != 0 || classes[""] != 20 {
		t.Fatalf("stale = %d, classes %v", stale, classes)
	}
}

func TestVisibilityCountsStaleAnswers(t *testing.T) {
	// Two of three nodes apply writes a second late: every check on them
	// right after an issue or a revoke sees the old state.
	e := visibilityEnv(t, 3, time.Second, true)
	checks, stale, classes := runVisibility(t, e, 10)
	if checks == 0 || stale == 0 {
		t.Fatalf("checks %d stale %d: lagging nodes not detected", checks, stale)
	}
	if classes["stale"] == 0 {
		t.Fatalf("ops with stale answers should be errors of class stale: %v", classes)
	}
	// Writes go round-robin, so about two thirds of checks hit a lagging node.
	if stale > checks {
		t.Fatalf("stale %d > checks %d", stale, checks)
	}
}

func TestVisibilitySingleNodeChecksItself(t *testing.T) {
	e := visibilityEnv(t, 1, 0, false)
	checks, stale, _ := runVisibility(t, e, 4)
	if checks != 4 || stale != 0 {
		t.Fatalf("checks %d stale %d", checks, stale)
	}
}

func TestVisibility503IsErrorNotStale(t *testing.T) {
	e := visibilityEnv(t, 2, 0, false)
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(503)
	}))
	defer unavailable.Close()
	e.nodes = []node{e.nodes[0], newNode(unavailable.URL)}
	w := newWorker(0, 1) // writes go to node 0 first
	o := visibilityScenario(e).Do(context.Background(), w)
	if o.stale != 0 || o.class != "503" || o.checks != 1 {
		t.Fatalf("got %+v", o)
	}
}
