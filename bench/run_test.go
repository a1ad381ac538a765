package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeCluster starts n fake nodes over one store and returns their URLs.
func fakeCluster(t *testing.T, n int, admin string) []string {
	t.Helper()
	st := newFakeStore(admin)
	var urls []string
	for i := 0; i < n; i++ {
		srv := httptest.NewServer(&fakeNode{s: st})
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return urls
}

func quickConfig(t *testing.T, scenario string, targets []string) Config {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Scenario = scenario
	cfg.Targets = targets
	cfg.AdminToken = "adm"
	cfg.Concurrency = 4
	cfg.Duration = 300 * time.Millisecond
	cfg.Warmup = 100 * time.Millisecond
	cfg.Interval = 100 * time.Millisecond
	cfg.Tokens = 200
	cfg.Users = 2
	cfg.Quiet = true
	cfg.JSONPath = filepath.Join(dir, "out.json")
	cfg.PlotPath = filepath.Join(dir, "out.svg")
	return cfg
}

// TestRunEveryScenarioAgainstFake drives every scenario end to end through
// Run against fake nodes: seeding, load, table, JSON and SVG.
func TestRunEveryScenarioAgainstFake(t *testing.T) {
	urls := fakeCluster(t, 3, "adm")
	for _, sc := range scenarioNames {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			cfg := quickConfig(t, sc, urls)
			if sc == ScenarioRevoke {
				cfg.Warmup = 0 // each revoke consumes a pooled token; keep them for the measured phase
				cfg.Tokens = 1000
			}
			var stdout, stderr bytes.Buffer
			rep, err := Run(context.Background(), cfg, &stdout, &stderr)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			if rep.Requests == 0 || rep.Throughput <= 0 {
				t.Fatalf("no load: %+v", rep.Result)
			}
			if rep.Errors != 0 {
				t.Fatalf("errors: %v", rep.ErrorsBy)
			}
			if sc == ScenarioVisibility && (rep.Visibility == nil || rep.Visibility.Checks == 0 || rep.Visibility.Stale != 0) {
				t.Fatalf("visibility: %+v", rep.Visibility)
			}
			raw, err := os.ReadFile(cfg.JSONPath)
			if err != nil {
				t.Fatal(err)
			}
			var back Report
			if err := json.Unmarshal(raw, &back); err != nil || back.Requests != rep.Requests {
				t.Fatalf("JSON: %v", err)
			}
			if _, err := os.Stat(cfg.PlotPath); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRunCompareBaseline(t *testing.T) {
	urls := fakeCluster(t, 1, "adm")
	cfg := quickConfig(t, ScenarioValidate, urls)
	cfg.CompareBaseline = true
	var stdout bytes.Buffer
	rep, err := Run(context.Background(), cfg, &stdout, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Baseline == nil || rep.BaselineRatio == nil || *rep.BaselineRatio <= 0 {
		t.Fatalf("no baseline ratio: %+v", rep.Baseline)
	}
	if rep.Baseline.Errors != 0 {
		t.Fatalf("baseline errors %v", rep.Baseline.ErrorsBy)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("baseline_ratio")) {
		t.Fatalf("table lacks the ratio:\n%s", stdout.String())
	}
}

func TestRunRevokeStopsWhenPoolIsUsedUp(t *testing.T) {
	urls := fakeCluster(t, 1, "adm")
	cfg := quickConfig(t, ScenarioRevoke, urls)
	cfg.Tokens = 50
	cfg.Warmup = 0
	cfg.Duration = 5 * time.Second
	rep, err := Run(context.Background(), cfg, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 50 || rep.Stopped == "" || rep.Errors != 0 {
		t.Fatalf("requests %d stopped %q errors %v", rep.Requests, rep.Stopped, rep.ErrorsBy)
	}
}

func TestRunOpenLoopAgainstFake(t *testing.T) {
	urls := fakeCluster(t, 2, "adm")
	cfg := quickConfig(t, ScenarioMixed, urls)
	cfg.Rate = 300
	rep, err := Run(context.Background(), cfg, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "open" || rep.Errors != 0 || rep.Requests < 50 || rep.Requests > 120 {
		t.Fatalf("mode %s requests %d errors %v", rep.Mode, rep.Requests, rep.ErrorsBy)
	}
}

func TestRunWrongAdminTokenFailsClearly(t *testing.T) {
	urls := fakeCluster(t, 1, "adm")
	cfg := quickConfig(t, ScenarioValidate, urls)
	cfg.AdminToken = "wrong"
	_, err := Run(context.Background(), cfg, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("admin token refused")) {
		t.Fatalf("err = %v", err)
	}
}

func TestRunBaselineAloneNeedsNoServer(t *testing.T) {
	cfg := quickConfig(t, ScenarioBaseline, nil)
	cfg.AdminToken = ""
	rep, err := Run(context.Background(), cfg, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.Errors != 0 {
		t.Fatalf("requests %d errors %v", rep.Requests, rep.ErrorsBy)
	}
}
