package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The standard suite (tokend-bench suite): a fixed list of scenarios, each
// on nodes spawned for it alone, whose results replace the generated part
// of BENCHMARKS.md. Every scenario is an ordinary Run with a Config, so
// each row can be reproduced by the single command printed beside it.

// Markers delimiting the generated section of BENCHMARKS.md. Text outside
// them is kept as it is.
const (
	SuiteBegin = "<!-- suite:begin -->"
	SuiteEnd   = "<!-- suite:end -->"
)

// SuiteOptions configure RunSuite.
type SuiteOptions struct {
	Out        string    // file to rewrite between the markers; "" writes nothing
	Quick      bool      // tiny durations and token counts (for tests)
	TokendPath string    // as --tokend
	Self       string    // executable serving the baseline in a child process (Config.BaselineSelf)
	Command    string    // the command line, recorded in the output
	Stdout     io.Writer // per-scenario tables
	Stderr     io.Writer // progress and diagnostics
}

// suiteStep is one planned scenario run.
type suiteStep struct {
	Group string
	Nodes int
	Cfg   Config
	// sizeFromIssue sizes Cfg.Tokens from the group's issue-cc throughput
	// (revoke consumes one pooled token per request).
	sizeFromIssue bool
}

// NodeStat is what a node's /metrics said right after its scenario.
type NodeStat struct {
	ID         string `json:"id"`
	RSSBytes   int64  `json:"rss_bytes"`   // process_resident_memory_bytes; -1 unknown
	LiveTokens int64  `json:"live_tokens"` // tokend_live_tokens; -1 unknown
	// MeanBatch is the mean number of log entries per Raft apply batch
	// (tokend_raft_apply_batch_size sum/count); -1 unknown.
	MeanBatch float64 `json:"mean_apply_batch"`
}

// SuiteRow is one scenario's outcome.
type SuiteRow struct {
	Group              string           `json:"group"`
	Scenario           string           `json:"scenario"`
	Nodes              int              `json:"nodes"`
	Command            string           `json:"command"` // equivalent single tokend-bench invocation
	Throughput         float64          `json:"throughput_rps"`
	Latency            LatencySummary   `json:"latency_us"`
	Requests           int64            `json:"requests"`
	Errors             int64            `json:"errors"`
	ErrorsBy           map[string]int64 `json:"errors_by_status,omitempty"`
	BaselineThroughput *float64         `json:"baseline_throughput_rps,omitempty"`
	BaselineRatio      *float64         `json:"baseline_ratio,omitempty"`
	Checks             *int64           `json:"visibility_checks,omitempty"`
	Stale              *int64           `json:"stale,omitempty"`
	Stopped            string           `json:"stopped_early,omitempty"`
	Seeding            string           `json:"seeding,omitempty"`
	NodeStats          []NodeStat       `json:"node_stats,omitempty"`
	Err                string           `json:"error,omitempty"`
}

// SuiteResult is the whole suite.
type SuiteResult struct {
	Command   string        `json:"command"`
	Started   time.Time     `json:"started_at"`
	Elapsed   time.Duration `json:"elapsed"`
	Machine   Machine       `json:"machine"`
	OS        string        `json:"os"`
	LoadStart string        `json:"loadavg_start"`
	LoadEnd   string        `json:"loadavg_end"`
	Quick     bool          `json:"quick"`
	// Calibration compares tokend-bench's client with wrk on the bare
	// baseline before the scenarios run; nil if it could not run.
	Calibration *Calibration `json:"calibration,omitempty"`
	Rows        []SuiteRow   `json:"rows"`
}

const (
	groupSingle = "Single node"
	groupThree  = "Three nodes"
)

// suitePlan lists the scenarios. Durations are chosen so the whole suite,
// seeding and node start-up included, stays well under 5 minutes on two
// cores; --quick shrinks everything to about a second per scenario.
func suitePlan(quick bool) []suiteStep {
	type t struct {
		group       string
		nodes       int
		scenario    string
		warmup, dur time.Duration
		tokens      int
		baseline    bool
		sizeRevoke  bool
	}
	s := time.Second
	list := []t{
		{groupSingle, 1, ScenarioValidate, 2 * s, 8 * s, 5000, true, false},
		{groupSingle, 1, ScenarioIntrospect, 2 * s, 8 * s, 5000, false, false},
		{groupSingle, 1, ScenarioIssueCC, 2 * s, 8 * s, 1, false, false},
		{groupSingle, 1, ScenarioRevoke, 1 * s, 5 * s, 20000, false, true},
		{groupThree, 3, ScenarioValidate, 2 * s, 8 * s, 3000, false, false},
		{groupThree, 3, ScenarioIssueCC, 2 * s, 8 * s, 1, false, false},
		{groupThree, 3, ScenarioRevoke, 1 * s, 5 * s, 10000, false, true},
		{groupThree, 3, ScenarioVisibility, 1 * s, 8 * s, 1, false, false},
	}
	out := make([]suiteStep, 0, len(list))
	for _, e := range list {
		cfg := DefaultConfig()
		cfg.Scenario = e.scenario
		cfg.Spawn = e.nodes
		cfg.Warmup, cfg.Duration, cfg.Tokens = e.warmup, e.dur, e.tokens
		cfg.CompareBaseline = e.baseline
		if quick {
			cfg.Concurrency = 8
			cfg.Warmup, cfg.Duration = 200*time.Millisecond, time.Second
			cfg.Tokens = min(cfg.Tokens, 300)
		}
		out = append(out, suiteStep{Group: e.group, Nodes: e.nodes, Cfg: cfg, sizeFromIssue: e.sizeRevoke})
	}
	return out
}

// revokeTokens sizes the revoke pool from the issue-cc rate seen on the
// same number of nodes: both are one Raft write per request (revoke
// measured a little faster), so the pool covers warmup plus duration at
// that rate with half again to spare.
func revokeTokens(issueRate float64, cfg Config, fallback int) int {
	if issueRate <= 0 {
		return fallback
	}
	n := int(math.Ceil(issueRate*(cfg.Warmup+cfg.Duration).Seconds()*1.5)) + cfg.Concurrency
	return max(2000, min(n, 100_000))
}

// commandFor renders the single tokend-bench invocation equivalent to cfg.
func commandFor(cfg Config) string {
	parts := []string{"tokend-bench", "--spawn", strconv.Itoa(cfg.Spawn),
		"--concurrency", strconv.Itoa(cfg.Concurrency),
		"--warmup", cfg.Warmup.String(), "--duration", cfg.Duration.String()}
	switch cfg.Scenario {
	case ScenarioValidate, ScenarioIntrospect, ScenarioRevoke, ScenarioMixed:
		parts = append(parts, "--tokens", strconv.Itoa(cfg.Tokens))
	}
	if cfg.CompareBaseline {
		parts = append(parts, "--compare-baseline")
	}
	return strings.Join(append(parts, cfg.Scenario), " ")
}

// RunSuite runs the standard suite and, when opts.Out is set, rewrites the
// generated section of that file. A failing scenario is recorded in its row
// and the suite goes on; cancellation stops it without writing the file.
func RunSuite(ctx context.Context, opts SuiteOptions) (*SuiteResult, error) {
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	path, err := findTokend(opts.TokendPath)
	if err != nil {
		return nil, err
	}
	res := &SuiteResult{
		Command: opts.Command, Started: time.Now().UTC().Truncate(time.Second),
		Machine: machine(), OS: osDescription(), LoadStart: loadAvg(), Quick: opts.Quick,
	}
	t0 := time.Now()
	res.Calibration = suiteCalibration(ctx, opts, stdout, stderr)
	issueRate := map[int]float64{}
	for _, st := range suitePlan(opts.Quick) {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		cfg := st.Cfg
		if st.sizeFromIssue {
			cfg.Tokens = revokeTokens(issueRate[st.Nodes], cfg, cfg.Tokens)
		}
		row := SuiteRow{Group: st.Group, Scenario: cfg.Scenario, Nodes: st.Nodes, Command: commandFor(cfg)}
		fmt.Fprintf(stderr, "\n== suite: %s, %d node(s): %s\n", cfg.Scenario, st.Nodes, row.Command)
		rep, stats, err := runSuiteStep(ctx, cfg, path, opts.Self, stdout, stderr)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		row.NodeStats = stats
		if err != nil {
			row.Err = err.Error()
			fmt.Fprintf(stderr, "suite: %s on %d node(s) failed: %v\n", cfg.Scenario, st.Nodes, err)
		}
		if rep != nil {
			fillRow(&row, rep)
			if cfg.Scenario == ScenarioIssueCC {
				issueRate[st.Nodes] = rep.Throughput
			}
		}
		res.Rows = append(res.Rows, row)
	}
	res.Elapsed = time.Since(t0).Round(time.Second)
	res.LoadEnd = loadAvg()
	if opts.Out != "" {
		if err := UpdateSuiteFile(opts.Out, RenderSuite(res)); err != nil {
			return res, err
		}
		fmt.Fprintf(stdout, "\nsuite finished in %s; wrote %s\n", res.Elapsed, opts.Out)
	} else {
		fmt.Fprintf(stdout, "\nsuite finished in %s\n", res.Elapsed)
	}
	return res, nil
}

// suiteCalibration runs the load tool calibration (calibrate.go) at the
// suite's connection counts; a failure is reported and the suite goes on.
func suiteCalibration(ctx context.Context, opts SuiteOptions, stdout, stderr io.Writer) *Calibration {
	o := CalibrateOptions{
		Connections: []int{64, 256}, Warmup: time.Second, Duration: 2 * time.Second, Rounds: 2,
		Self: opts.Self, Stderr: stderr,
	}
	if opts.Quick {
		o.Connections, o.Warmup, o.Duration, o.Rounds = []int{8}, 0, time.Second, 1
	}
	fmt.Fprintf(stderr, "\n== suite: calibration, wrk and tokend-bench on the bare baseline at %v connections\n", o.Connections)
	cal, err := Calibrate(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "suite: calibration failed: %v\n", err)
		return nil
	}
	_ = cal.WriteTable(stdout)
	return cal
}

// runSuiteStep spawns the nodes itself (so their /metrics can be read
// after the load and before they stop), then runs cfg against them.
func runSuiteStep(ctx context.Context, cfg Config, tokend, self string, stdout, stderr io.Writer) (*Report, []NodeStat, error) {
	cl, err := spawnCluster(ctx, tokend, cfg.Spawn, stderr)
	if err != nil {
		return nil, nil, fmt.Errorf("spawning: %w", err)
	}
	defer cl.Stop()
	n := cfg.Spawn
	cfg.Args = strings.Fields(commandFor(cfg))
	cfg.Targets, cfg.AdminToken, cfg.Spawn = cl.URLs(), cl.AdminToken, 0
	cfg.JSONPath, cfg.PlotPath = "", ""
	cfg.BaselineSelf = self
	rep, err := Run(ctx, cfg, stdout, stderr)
	if rep != nil {
		rep.Spawned = n
	}
	var stats []NodeStat
	for _, nd := range cl.Nodes {
		stats = append(stats, scrapeNode(ctx, nd.ID, nd.URL()))
	}
	return rep, stats, err
}

func fillRow(row *SuiteRow, rep *Report) {
	row.Throughput, row.Latency = rep.Throughput, rep.Latency
	row.Requests, row.Errors, row.ErrorsBy = rep.Requests, rep.Errors, rep.ErrorsBy
	row.Stopped = rep.Stopped
	if rep.Baseline != nil {
		b := rep.Baseline.Throughput
		row.BaselineThroughput = &b
		row.BaselineRatio = rep.BaselineRatio
	}
	if v := rep.Visibility; v != nil {
		c, s := v.Checks, v.Stale
		row.Checks, row.Stale = &c, &s
	}
	for _, n := range rep.Notes {
		if strings.HasPrefix(n, "seeded ") {
			row.Seeding = n
		}
	}
}

// scrapeNode reads the node's RSS and live token count from /metrics.
func scrapeNode(ctx context.Context, id, base string) NodeStat {
	st := NodeStat{ID: id, RSSBytes: -1, LiveTokens: -1, MeanBatch: -1}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: loopbackDialer()}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return st
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st
	}
	m := parseMetrics(io.LimitReader(resp.Body, 8<<20), "process_resident_memory_bytes", "tokend_live_tokens",
		"tokend_raft_apply_batch_size_sum", "tokend_raft_apply_batch_size_count")
	if n := m["tokend_raft_apply_batch_size_count"]; n > 0 {
		st.MeanBatch = m["tokend_raft_apply_batch_size_sum"] / n
	}
	if v, ok := m["process_resident_memory_bytes"]; ok {
		st.RSSBytes = int64(v)
	}
	if v, ok := m["tokend_live_tokens"]; ok {
		st.LiveTokens = int64(v)
	}
	return st
}

// parseMetrics picks the values of unlabelled samples with the given names
// out of a Prometheus text exposition.
func parseMetrics(r io.Reader, names ...string) map[string]float64 {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok || !want[name] {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				out[name] = v
			}
		}
	}
	return out
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func osDescription() string {
	d := runtime.GOOS + "/" + runtime.GOARCH
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				d += ", " + strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		d += ", kernel " + strings.TrimSpace(string(b))
	}
	return d
}

// RenderSuite renders the generated section (without the markers).
func RenderSuite(r *SuiteResult) string {
	var b strings.Builder
	renderSuiteHeader(&b, r)
	renderSuiteCalibration(&b, r.Calibration) // qualifies every number below
	var groups []string
	byGroup := map[string][]SuiteRow{}
	for _, row := range r.Rows {
		if _, ok := byGroup[row.Group]; !ok {
			groups = append(groups, row.Group)
		}
		byGroup[row.Group] = append(byGroup[row.Group], row)
	}
	for _, g := range groups {
		rows := byGroup[g]
		fmt.Fprintf(&b, "\n### %s\n\n", g)
		renderSuiteResults(&b, rows)
		renderSuiteNodes(&b, rows)
		renderSuiteCommands(&b, rows)
	}
	return b.String()
}

// renderSuiteHeader writes the heading and the list of what the suite ran
// on.
func renderSuiteHeader(b *strings.Builder, r *SuiteResult) {
	b.WriteString("## Load suite (generated by `tokend-bench suite`; do not edit by hand)\n\n")
	fmt.Fprintf(b, "- Command: `%s`", r.Command)
	if r.Quick {
		b.WriteString(" (quick mode: numbers are not meaningful)")
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "- Date: %s; the suite took %s\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed)
	m := r.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown CPU"
	}
	fmt.Fprintf(b, "- Machine: %s, %d logical CPUs, GOMAXPROCS %d, %s, %s\n", cpu, m.CPUs, m.GOMAXPROCS, m.GoVersion, r.OS)
	fmt.Fprintf(b, "- Load average (1/5/15 min): %s at start, %s at end\n", r.LoadStart, r.LoadEnd)
	b.WriteString("- Load generator, baseline and every node share this machine. Closed loop: latencies include coordinated omission.\n")
}

// renderSuiteResults writes a group's table of throughput and latency.
func renderSuiteResults(b *strings.Builder, rows []SuiteRow) {
	b.WriteString("| scenario | nodes | req/s | p50 | p90 | p99 | p99.9 | max | errors | baseline req/s | ratio | stale |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range rows {
		if row.Err != "" && row.Requests == 0 {
			fmt.Fprintf(b, "| %s | %d | failed: %s | | | | | | | | | |\n", row.Scenario, row.Nodes, mdEscape(firstLine(row.Err)))
			continue
		}
		l := row.Latency
		base, ratio, stale := "–", "–", "–"
		if row.BaselineThroughput != nil {
			base = fmt.Sprintf("%.0f", *row.BaselineThroughput)
		}
		if row.BaselineRatio != nil {
			ratio = fmt.Sprintf("%.2f", *row.BaselineRatio)
		}
		if row.Stale != nil {
			stale = fmt.Sprintf("%d of %d", *row.Stale, *row.Checks)
		}
		fmt.Fprintf(b, "| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			row.Scenario, row.Nodes, row.Throughput, us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max),
			errorsCell(row.Errors, row.ErrorsBy), base, ratio, stale)
	}
}

// renderSuiteNodes writes a group's table of what the nodes' /metrics
// said after each scenario.
func renderSuiteNodes(b *strings.Builder, rows []SuiteRow) {
	b.WriteString("\nNodes right after each scenario (from their `/metrics`):\n\n")
	b.WriteString("| scenario | RSS per node (MiB) | live tokens per node | mean Raft apply batch per node |\n|---|---|---|---|\n")
	for _, row := range rows {
		n := len(row.NodeStats)
		rss, live, batch := make([]string, n), make([]string, n), make([]string, n)
		for i, s := range row.NodeStats {
			rss[i], live[i], batch[i] = "?", "?", "?"
			if s.RSSBytes >= 0 {
				rss[i] = fmt.Sprintf("%.1f", float64(s.RSSBytes)/(1<<20))
			}
			if s.LiveTokens >= 0 {
				live[i] = strconv.FormatInt(s.LiveTokens, 10)
			}
			if s.MeanBatch >= 0 {
				batch[i] = fmt.Sprintf("%.1f", s.MeanBatch)
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", row.Scenario, orDash(strings.Join(rss, " / ")),
			orDash(strings.Join(live, " / ")), orDash(strings.Join(batch, " / ")))
	}
}

// renderSuiteCommands writes a group's list of equivalent single
// invocations, with notes on how each went.
func renderSuiteCommands(b *strings.Builder, rows []SuiteRow) {
	b.WriteString("\nEach row on its own (fresh nodes each):\n\n")
	for _, row := range rows {
		fmt.Fprintf(b, "- `%s`", row.Command)
		var notes []string
		if row.Seeding != "" {
			notes = append(notes, row.Seeding)
		}
		if row.Stopped != "" {
			notes = append(notes, "stopped early: "+row.Stopped)
		}
		if row.Err != "" && row.Requests > 0 {
			notes = append(notes, "error: "+firstLine(row.Err))
		}
		if len(notes) > 0 {
			fmt.Fprintf(b, " — %s", mdEscape(strings.Join(notes, "; ")))
		}
		b.WriteString("\n")
	}
}

func errorsCell(n int64, by map[string]int64) string {
	if n == 0 || len(by) == 0 {
		return strconv.FormatInt(n, 10)
	}
	parts := make([]string, 0, len(by))
	for _, k := range sortedKeys(by) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, by[k]))
	}
	return fmt.Sprintf("%d (%s)", n, mdEscape(strings.Join(parts, " ")))
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// ReplaceSuiteSection puts section between the markers of doc, keeping
// everything outside them. A doc without markers gets them appended (an
// empty doc gets a title first). A begin marker without an end marker after
// it is an error, so a damaged file is never silently duplicated.
func ReplaceSuiteSection(doc, section string) (string, error) {
	block := SuiteBegin + "\n" + strings.TrimRight(section, "\n") + "\n" + SuiteEnd
	i := strings.Index(doc, SuiteBegin)
	if i < 0 {
		if strings.Contains(doc, SuiteEnd) {
			return "", fmt.Errorf("%s without %s", SuiteEnd, SuiteBegin)
		}
		if strings.TrimSpace(doc) == "" {
			return "# Benchmarks\n\n" + block + "\n", nil
		}
		return strings.TrimRight(doc, "\n") + "\n\n" + block + "\n", nil
	}
	j := strings.Index(doc[i:], SuiteEnd)
	if j < 0 {
		return "", fmt.Errorf("%s without %s after it", SuiteBegin, SuiteEnd)
	}
	j += i + len(SuiteEnd)
	return doc[:i] + block + doc[j:], nil
}

// UpdateSuiteFile rewrites the generated section of the file at path,
// creating the file if it does not exist.
func UpdateSuiteFile(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc, err := ReplaceSuiteSection(string(old), section)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".suite-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(doc); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

const suiteUsage = `Usage: tokend-bench suite [--out FILE] [--quick] [--tokend PATH]

Runs the load tool calibration (tokend-bench calibrate at 64 and 256
connections, wrk against tokend-bench on the bare baseline), then the
standard suite, each scenario on freshly spawned local nodes:
single node: validate (with --compare-baseline), introspect, issue-cc,
revoke; three nodes: validate, issue-cc, revoke, visibility. It takes about
two minutes on two cores. The results replace the text between
` + SuiteBegin + ` and ` + SuiteEnd + ` in --out (the file is
created if missing; text outside the markers is kept).

Flags:
`

// SuiteMain is the suite subcommand: args are the arguments after "suite",
// command the whole command line for the record, self the executable that
// serves the baseline. It returns the process exit code.
func SuiteMain(ctx context.Context, args []string, command, self string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokend-bench suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := SuiteOptions{Self: self, Command: command, Stdout: stdout, Stderr: stderr}
	fs.StringVar(&opts.Out, "out", "BENCHMARKS.md", "markdown `FILE` whose generated section is rewritten (\"\" to only print)")
	fs.BoolVar(&opts.Quick, "quick", false, "shrink durations and token counts to seconds (a smoke test, not a benchmark)")
	fs.StringVar(&opts.TokendPath, "tokend", "", "`PATH` of the tokend binary (default: beside tokend-bench, then PATH)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), suiteUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tokend-bench suite: unexpected arguments %q\n", fs.Args())
		return 2
	}
	res, err := RunSuite(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "tokend-bench suite:", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	for _, row := range res.Rows {
		if row.Stale != nil && *row.Stale > 0 {
			return 3 // a consistency violation was observed
		}
	}
	return 0
}
