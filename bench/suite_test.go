package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fakeSuite() *SuiteResult {
	ratio, base := 0.842, 12000.0
	checks, stale := int64(648), int64(0)
	calRatio := 1.09
	return &SuiteResult{
		Command: "bin/tokend-bench suite --out BENCHMARKS.md",
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Elapsed: 151 * time.Second,
		Machine: Machine{GOOS: "linux", GOARCH: "amd64", CPUs: 2, GOMAXPROCS: 2, GoVersion: "go1.99", CPUModel: "Test CPU"},
		OS:      "linux/amd64, Testix", LoadStart: "1.00 2.00 3.00", LoadEnd: "1.50 2.00 3.00",
		Calibration: &Calibration{Target: "bare baseline", Wrk: "/usr/bin/wrk", Duration: 3 * time.Second, Rounds: 2,
			Rows: []CalibrationRow{{Connections: 64, Wrk: 57245, Bench: 52540, Ratio: &calRatio}, {Connections: 256, Bench: 44010}}},
		Rows: []SuiteRow{
			{Group: groupSingle, Scenario: ScenarioValidate, Nodes: 1, Command: "tokend-bench --spawn 1 validate",
				Throughput: 10104.4, Latency: LatencySummary{P50: 590, P90: 1310, P99: 3770, P999: 7300, Max: 8490},
				Requests: 80000, BaselineThroughput: &base, BaselineRatio: &ratio, Seeding: "seeded 5000 access tokens in 2s",
				NodeStats: []NodeStat{{ID: "n1", RSSBytes: 24 << 20, LiveTokens: 5000, MeanBatch: 1}}},
			{Group: groupSingle, Scenario: ScenarioRevoke, Nodes: 1, Command: "tokend-bench --spawn 1 revoke",
				Throughput: 2000, Requests: 10000, Errors: 3, ErrorsBy: map[string]int64{"503": 2, "timeout": 1},
				Stopped:   "the pre-issued token pool is used up",
				NodeStats: []NodeStat{{ID: "n1", RSSBytes: -1, LiveTokens: -1, MeanBatch: -1}}},
			{Group: groupThree, Scenario: ScenarioVisibility, Nodes: 3, Command: "tokend-bench --spawn 3 visibility",
				Throughput: 320, Requests: 324, Checks: &checks, Stale: &stale,
				NodeStats: []NodeStat{{ID: "n1", RSSBytes: 50 << 20, LiveTokens: 4, MeanBatch: 3.5}, {ID: "n2", RSSBytes: 51 << 20, LiveTokens: 4, MeanBatch: 2}, {ID: "n3", RSSBytes: 52 << 20, LiveTokens: 4, MeanBatch: 2.25}}},
			{Group: groupThree, Scenario: ScenarioIssueCC, Nodes: 3, Command: "tokend-bench --spawn 3 issue-cc",
				Err: "spawning: tokend n2 exited | early\nlog tail"},
		},
	}
}

func TestRenderSuite(t *testing.T) {
	out := RenderSuite(fakeSuite())
	for _, want := range []string{
		"- Command: `bin/tokend-bench suite --out BENCHMARKS.md`\n",
		"2025-01-02 03:04 UTC", "2m31s",
		"Test CPU, 2 logical CPUs, GOMAXPROCS 2, go1.99, linux/amd64, Testix",
		"1.00 2.00 3.00 at start, 1.50 2.00 3.00 at end",
		"### Single node\n", "### Three nodes\n",
		"| validate | 1 | 10104 | 590µs | 1.31ms | 3.77ms | 7.30ms | 8.49ms | 0 | 12000 | 0.84 | – |\n",
		"| revoke | 1 | 2000 |", "| 3 (503=2 timeout=1) | – | – | – |\n",
		"| 0 of 648 |\n",
		"| issue-cc | 3 | failed: spawning: tokend n2 exited \\| early |",
		"| validate | 24.0 | 5000 | 1.0 |\n", "| revoke | ? | ? | ? |\n",
		"| visibility | 50.0 / 51.0 / 52.0 | 4 / 4 / 4 | 3.5 / 2.0 / 2.2 |\n",
		"- `tokend-bench --spawn 1 validate` — seeded 5000 access tokens in 2s\n",
		"stopped early: the pre-issued token pool is used up",
		"### Load tool calibration\n", "best of 2 alternating rounds", "| 64 | 57245 | 52540 | 1.09 |\n", "| 256 | – | 44010 | – |\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered suite lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, SuiteBegin) || strings.Contains(out, SuiteEnd) {
		t.Error("RenderSuite must not include the markers")
	}
	if strings.Index(out, "### Load tool calibration") > strings.Index(out, "### Single node") {
		t.Error("the calibration qualifies the results and comes before them")
	}
	if strings.Contains(out, "log tail") {
		t.Error("multi-line errors must be cut to their first line")
	}
	// Every table row of a table has as many cells as its header.
	var cols int
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row has %d separators, header %d: %s", n, cols, line)
		}
	}
}

func TestReplaceSuiteSection(t *testing.T) {
	block := SuiteBegin + "\nNEW\n" + SuiteEnd
	cases := []struct{ name, doc, want string }{
		{"empty", "", "# Benchmarks\n\n" + block + "\n"},
		{"no markers", "# B\n\nhand text\n", "# B\n\nhand text\n\n" + block + "\n"},
		{"replace", "# B\n\nabove\n\n" + SuiteBegin + "\nOLD\nOLD2\n" + SuiteEnd + "\n\nbelow\n",
			"# B\n\nabove\n\n" + block + "\n\nbelow\n"},
		{"adjacent markers", "x " + SuiteBegin + SuiteEnd + " y", "x " + block + " y"},
	}
	for _, c := range cases {
		got, err := ReplaceSuiteSection(c.doc, "NEW\n\n")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
		again, err := ReplaceSuiteSection(got, "NEW")
		if err != nil || again != got {
			t.Errorf("%s: replacing again is not idempotent: %q (%v)", c.name, again, err)
		}
	}
	for _, bad := range []string{"a " + SuiteBegin + " b", "a " + SuiteEnd + " b", SuiteEnd + " " + SuiteBegin} {
		if _, err := ReplaceSuiteSection(bad, "NEW"); err == nil {
			t.Errorf("damaged doc %q accepted", bad)
		}
	}
}

func TestUpdateSuiteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := UpdateSuiteFile(path, "first"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	doc := strings.Replace(string(b), "# Benchmarks\n", "# Benchmarks\n\nhand-written\n", 1) + "\nfooter\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateSuiteFile(path, RenderSuite(fakeSuite())); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	if !strings.HasPrefix(got, "# Benchmarks\n\nhand-written\n\n"+SuiteBegin+"\n## Load suite") ||
		!strings.HasSuffix(got, SuiteEnd+"\n\nfooter\n") || strings.Contains(got, "first") {
		t.Errorf("file not updated in place:\n%s", got)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".suite-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.5015040e+07
tokend_live_tokens_total 7
tokend_http_requests_total{code="200",route="/validate"} 12
tokend_live_tokens 1e+06
`
	m := parseMetrics(strings.NewReader(text), "process_resident_memory_bytes", "tokend_live_tokens", "absent")
	if m["process_resident_memory_bytes"] != 45015040 || m["tokend_live_tokens"] != 1e6 || len(m) != 2 {
		t.Errorf("got %v", m)
	}
}

func TestSuitePlan(t *testing.T) {
	for _, quick := range []bool{false, true} {
		plan := suitePlan(quick)
		var total time.Duration
		var names []string
		for _, st := range plan {
			if err := st.Cfg.Validate(); err != nil {
				t.Errorf("quick=%v %s: %v", quick, st.Cfg.Scenario, err)
			}
			if st.Cfg.Spawn != st.Nodes {
				t.Errorf("%s: spawn %d nodes %d", st.Cfg.Scenario, st.Cfg.Spawn, st.Nodes)
			}
			total += st.Cfg.Warmup + st.Cfg.Duration
			if st.Cfg.CompareBaseline {
				total += st.Cfg.Warmup + st.Cfg.Duration
			}
			names = append(names, st.Group+"/"+st.Cfg.Scenario)
		}
		want := "Single node/validate Single node/introspect Single node/issue-cc Single node/revoke " +
			"Three nodes/validate Three nodes/issue-cc Three nodes/revoke Three nodes/visibility"
		if got := strings.Join(names, " "); got != want {
			t.Errorf("plan %q, want %q", got, want)
		}
		// Load time only; seeding and start-up come on top and must fit too.
		if limit := 2 * time.Minute; !quick && total > limit || quick && total > 15*time.Second {
			t.Errorf("quick=%v: %s of load", quick, total)
		}
		if !plan[0].Cfg.CompareBaseline || plan[0].Cfg.Scenario != ScenarioValidate {
			t.Error("single-node validate must compare with the baseline")
		}
	}
}

func TestRevokeTokens(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Warmup, cfg.Duration, cfg.Concurrency = time.Second, 5*time.Second, 64
	if got := revokeTokens(0, cfg, 1234); got != 1234 {
		t.Errorf("no issue rate: %d", got)
	}
	if got := revokeTokens(1000, cfg, 0); got != 1000*6*3/2+64 {
		t.Errorf("1000/s: %d", got)
	}
	if got := revokeTokens(10, cfg, 0); got != 2000 {
		t.Errorf("floor: %d", got)
	}
	if got := revokeTokens(1e6, cfg, 0); got != 100_000 {
		t.Errorf("cap: %d", got)
	}
}

func TestCommandFor(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Spawn, cfg.Tokens, cfg.CompareBaseline = 1, 5000, true
	cfg.Warmup, cfg.Duration = 2*time.Second, 8*time.Second
	want := "tokend-bench --spawn 1 --concurrency 64 --warmup 2s --duration 8s --tokens 5000 --compare-baseline validate"
	if got := commandFor(cfg); got != want {
		t.Errorf("got %q", got)
	}
	// The rendered command parses back to the same settings.
	args := strings.Fields(want)[1:]
	back, err := ParseArgs(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Spawn != 1 || back.Tokens != 5000 || !back.CompareBaseline || back.Duration != cfg.Duration || back.Warmup != cfg.Warmup || back.Scenario != ScenarioValidate {
		t.Errorf("round trip: %+v", back)
	}
	cfg.Scenario, cfg.CompareBaseline = ScenarioIssueCC, false
	if got := commandFor(cfg); strings.Contains(got, "--tokens") {
		t.Errorf("issue-cc needs no tokens: %q", got)
	}
}

func TestSuiteMainFlags(t *testing.T) {
	var out bytes.Buffer
	if code := SuiteMain(context.Background(), []string{"--help"}, "", "", &out, &out); code != 0 || !strings.Contains(out.String(), SuiteBegin) || !strings.Contains(out.String(), "-quick") {
		t.Errorf("--help: code %d, %q", code, out.String())
	}
	out.Reset()
	if code := SuiteMain(context.Background(), []string{"extra"}, "", "", &out, &out); code != 2 {
		t.Errorf("extra argument: code %d", code)
	}
	if code := SuiteMain(context.Background(), []string{"--nope"}, "", "", &out, &out); code != 2 {
		t.Errorf("unknown flag: code %d", code)
	}
}
