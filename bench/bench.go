package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Run executes one tokend-bench invocation: prepare targets (spawning
// nodes if asked), seed, run the scenario (and the baseline when asked),
// print the table to stdout and write the JSON and SVG files. Progress and
// diagnostics go to stderr. Spawned nodes are stopped before Run returns,
// including when ctx is cancelled.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mix, _ := ParseMix(cfg.Mix)
	client := newHTTPClient(cfg.Concurrency, cfg.Timeout)
	defer client.CloseIdleConnections()

	rep := &Report{
		Tool: "tokend-bench", Version: 1, StartedAt: time.Now().UTC().Truncate(time.Second),
		Command: cfg.Args, Machine: machine(),
	}
	r := &benchRun{ctx: ctx, cfg: cfg, mix: mix, client: client, rep: rep, stderr: stderr}

	targets, admin, stopNodes, err := r.prepareTargets()
	if err != nil {
		return nil, err
	}
	defer stopNodes()
	nodes := make([]node, len(targets))
	for i, t := range targets {
		nodes[i] = newNode(t)
	}
	sd, err := r.seed(nodes, admin)
	if err != nil {
		return nil, err
	}
	// Baseline preparation happens before the scenario runs, while every
	// pooled token is still valid (the revoke scenario consumes them).
	base, closeBase, err := r.prepareBaseline(nodes, sd)
	if err != nil {
		return nil, err
	}
	defer closeBase()

	r.spec = loadSpec{
		Concurrency: cfg.Concurrency, Rate: cfg.Rate, Duration: cfg.Duration, Warmup: cfg.Warmup,
		MaxRequests: cfg.Requests, Interval: cfg.Interval, Seed: randomSeed(),
	}
	if cfg.Scenario == ScenarioBaseline {
		rep.Result = r.runBaseline(base, sd)
	} else {
		r.runScenario(targets, nodes, sd, base)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("client: one persistent HTTP/1.1 connection per worker and node, timeout %s", cfg.Timeout))
	if rep.Mode == "closed" {
		rep.Notes = append(rep.Notes, "closed loop: latencies include coordinated omission; use --rate for publishable percentiles")
	}
	return rep, writeOutputs(rep, cfg, stdout)
}

// benchRun is the state the steps of one Run share.
type benchRun struct {
	ctx    context.Context
	cfg    Config
	mix    []MixEntry
	client *http.Client
	rep    *Report
	stderr io.Writer
	spec   loadSpec
}

// prepareTargets spawns the nodes asked for, or checks the given targets.
// It returns the targets' URLs, the admin token and a function that stops
// spawned nodes (a no-op when none were spawned).
func (r *benchRun) prepareTargets() (targets []string, admin string, stop func(), err error) {
	cfg := &r.cfg
	if cfg.Spawn <= 0 {
		for _, t := range cfg.Targets {
			u, err := CheckTarget(t)
			if err != nil {
				return nil, "", nil, err
			}
			targets = append(targets, u)
		}
		return targets, cfg.AdminToken, func() {}, nil
	}
	path, err := findTokend(cfg.TokendPath)
	if err != nil {
		return nil, "", nil, err
	}
	fmt.Fprintf(r.stderr, "spawning %d tokend node(s) from %s\n", cfg.Spawn, path)
	cl, err := spawnCluster(r.ctx, path, cfg.Spawn, r.stderr)
	if err != nil {
		return nil, "", nil, err
	}
	r.rep.Spawned = cfg.Spawn
	return cl.URLs(), cl.AdminToken, cl.Stop, nil
}

// seed creates what the scenario needs on the nodes; without nodes (the
// baseline alone) it makes up --tokens random tokens.
func (r *benchRun) seed(nodes []node, admin string) (*seeded, error) {
	cfg := &r.cfg
	need := needsFor(cfg, r.mix)
	sd := &seeded{}
	if len(nodes) == 0 {
		for i := 0; i < cfg.Tokens; i++ {
			sd.tokens = append(sd.tokens, "bat_"+randomString(32))
		}
		return sd, nil
	}
	s := &seeder{client: r.client, nodes: nodes, admin: admin, log: r.stderr, tty: isTerminal(r.stderr), runID: randomString(4)}
	if cfg.Quiet {
		s.log = nil
	}
	t0 := time.Now()
	sd, err := s.seed(r.ctx, need)
	if err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	if need.tokens > 0 {
		r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("seeded %d access tokens in %s", len(sd.tokens), time.Since(t0).Round(time.Millisecond)))
	}
	return sd, nil
}

// prepareBaseline starts the baseline server when the run needs one, and
// returns it with a function that closes it (a no-op when there is none).
func (r *benchRun) prepareBaseline(nodes []node, sd *seeded) (*baselineServer, func(), error) {
	cfg := &r.cfg
	if cfg.Scenario != ScenarioBaseline && !cfg.CompareBaseline {
		return nil, func() {}, nil
	}
	shape := syntheticShape()
	if len(nodes) > 0 {
		var err error
		if shape, err = probeValidateShape(r.ctx, r.client, nodes[0], sd.tokens[0]); err != nil {
			return nil, nil, err
		}
	}
	if cfg.BaselineSelf != "" {
		bp, err := startBaselineProcess(r.ctx, cfg.BaselineSelf, shape, sd.tokens)
		if err != nil {
			return nil, nil, err
		}
		r.rep.Notes = append(r.rep.Notes, "baseline: a separate process, like tokend")
		return &baselineServer{URL: bp.URL}, func() { bp.Close() }, nil
	}
	base, err := startBaseline(newBaselineHandler(shape, sd.tokens))
	if err != nil {
		return nil, nil, err
	}
	r.rep.Notes = append(r.rep.Notes, "baseline: inside the bench process")
	return base, func() { base.Close() }, nil
}

// load runs the scenario name against e, with a progress line unless
// --quiet.
func (r *benchRun) load(name string, e *env, nodeURLs []string) Result {
	sc := newScenario(name, e, r.mix)
	var onProgress func(progress)
	end := func() {}
	if !r.cfg.Quiet {
		onProgress, end = progressPrinter(r.stderr, name)
	}
	out := runLoad(r.ctx, r.spec, sc, onProgress)
	end()
	return newResult(name, r.spec, nodeURLs, out)
}

// runBaseline runs the baseline scenario against base.
func (r *benchRun) runBaseline(base *baselineServer, sd *seeded) Result {
	e := &env{nodes: []node{newNode(base.URL)}, client: r.client, timeout: r.cfg.Timeout, pool: newTokenPool(sd.tokens, 0)}
	return r.load(ScenarioBaseline, e, []string{base.URL})
}

// runScenario runs cfg.Scenario against the nodes, then the baseline when
// --compare-baseline asks for it, and puts the results in the report.
func (r *benchRun) runScenario(targets []string, nodes []node, sd *seeded, base *baselineServer) {
	cfg, rep := &r.cfg, r.rep
	e := &env{
		nodes: nodes, client: r.client, timeout: cfg.Timeout, creds: sd.creds, users: sd.users,
		pool:   newTokenPool(sd.tokens, r.spareFraction()),
		issued: newTokenStack(1_000_000),
		chains: make(chan string, max(len(sd.chains), cfg.Concurrency)),
	}
	for _, c := range sd.chains {
		e.chains <- c
	}
	rep.Result = r.load(cfg.Scenario, e, targets)
	if cfg.CompareBaseline && r.ctx.Err() == nil {
		b := r.runBaseline(base, sd)
		rep.Baseline = &b
		if b.Throughput > 0 {
			ratio := round3(rep.Throughput / b.Throughput)
			rep.BaselineRatio = &ratio
		}
	}
}

// spareFraction is the share of the token pool kept aside for revokes.
func (r *benchRun) spareFraction() float64 {
	switch {
	case r.cfg.Scenario == ScenarioRevoke:
		return 1
	case r.cfg.Scenario == ScenarioMixed && newMixPicker(r.mix).share(opRevoke) > 0:
		p := newMixPicker(r.mix)
		if p.share(opValidate)+p.share(opIntrospect) == 0 {
			return 1
		}
		return 0.1
	}
	return 0
}

// writeOutputs prints the table to stdout and writes the JSON and SVG
// files asked for.
func writeOutputs(rep *Report, cfg Config, stdout io.Writer) error {
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if cfg.JSONPath != "" {
		if err := rep.WriteJSON(cfg.JSONPath); err != nil {
			return fmt.Errorf("writing --json: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", cfg.JSONPath)
	}
	if cfg.PlotPath != "" {
		if err := rep.WriteSVGFile(cfg.PlotPath); err != nil {
			return fmt.Errorf("writing --plot: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", cfg.PlotPath)
	}
	return nil
}

func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
