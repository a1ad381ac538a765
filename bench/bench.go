package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
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

	// Targets.
	var targets []string
	admin := cfg.AdminToken
	if cfg.Spawn > 0 {
		path, err := findTokend(cfg.TokendPath)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "spawning %d tokend node(s) from %s\n", cfg.Spawn, path)
		cl, err := spawnCluster(ctx, path, cfg.Spawn, stderr)
		if err != nil {
			return nil, err
		}
		defer cl.Stop()
		targets, admin = cl.URLs(), cl.AdminToken
		rep.Spawned = cfg.Spawn
	} else {
		for _, t := range cfg.Targets {
			u, err := CheckTarget(t)
			if err != nil {
				return nil, err
			}
			targets = append(targets, u)
		}
	}
	nodes := make([]node, len(targets))
	for i, t := range targets {
		nodes[i] = newNode(t)
	}

	// Seed.
	need := needsFor(&cfg, mix)
	sd := &seeded{}
	if len(nodes) > 0 {
		var err error
		s := &seeder{client: client, nodes: nodes, admin: admin, log: stderr, tty: isTerminal(stderr), runID: randomString(4)}
		if cfg.Quiet {
			s.log = nil
		}
		t0 := time.Now()
		if sd, err = s.seed(ctx, need); err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
		if need.tokens > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("seeded %d access tokens in %s", len(sd.tokens), time.Since(t0).Round(time.Millisecond)))
		}
	} else {
		for i := 0; i < cfg.Tokens; i++ {
			sd.tokens = append(sd.tokens, "bat_"+randomString(32))
		}
	}

	// Baseline preparation happens before the scenario runs, while every
	// pooled token is still valid (the revoke scenario consumes them).
	var base *baselineServer
	if cfg.Scenario == ScenarioBaseline || cfg.CompareBaseline {
		shape := syntheticShape()
		if len(nodes) > 0 {
			var err error
			if shape, err = probeValidateShape(ctx, client, nodes[0], sd.tokens[0]); err != nil {
				return nil, err
			}
		}
		if cfg.BaselineSelf != "" {
			bp, err := startBaselineProcess(ctx, cfg.BaselineSelf, shape, sd.tokens)
			if err != nil {
				return nil, err
			}
			defer bp.Close()
			base = &baselineServer{URL: bp.URL}
			rep.Notes = append(rep.Notes, "baseline: a separate process, like tokend")
		} else {
			var err error
			if base, err = startBaseline(newBaselineHandler(shape, sd.tokens)); err != nil {
				return nil, err
			}
			defer base.Close()
			rep.Notes = append(rep.Notes, "baseline: inside the bench process")
		}
	}

	spec := loadSpec{
		Concurrency: cfg.Concurrency, Rate: cfg.Rate, Duration: cfg.Duration, Warmup: cfg.Warmup,
		MaxRequests: cfg.Requests, Interval: cfg.Interval, Seed: randomSeed(),
	}
	run := func(name string, e *env, nodeURLs []string) Result {
		sc := newScenario(name, e, mix)
		var onProgress func(progress)
		end := func() {}
		if !cfg.Quiet {
			onProgress, end = progressPrinter(stderr, name)
		}
		out := runLoad(ctx, spec, sc, onProgress)
		end()
		return newResult(name, spec, nodeURLs, out)
	}

	if cfg.Scenario == ScenarioBaseline {
		e := &env{nodes: []node{newNode(base.URL)}, client: client, pool: newTokenPool(sd.tokens, 0)}
		rep.Result = run(ScenarioBaseline, e, []string{base.URL})
	} else {
		spare := 0.0
		switch {
		case cfg.Scenario == ScenarioRevoke:
			spare = 1
		case cfg.Scenario == ScenarioMixed && newMixPicker(mix).share(opRevoke) > 0:
			spare = 0.1
			p := newMixPicker(mix)
			if p.share(opValidate)+p.share(opIntrospect) == 0 {
				spare = 1
			}
		}
		e := &env{
			nodes: nodes, client: client, creds: sd.creds, users: sd.users,
			pool:   newTokenPool(sd.tokens, spare),
			issued: newTokenStack(1_000_000),
			chains: make(chan string, max(len(sd.chains), cfg.Concurrency)),
		}
		for _, c := range sd.chains {
			e.chains <- c
		}
		rep.Result = run(cfg.Scenario, e, targets)
		if cfg.CompareBaseline && ctx.Err() == nil {
			be := &env{nodes: []node{newNode(base.URL)}, client: client, pool: newTokenPool(sd.tokens, 0)}
			b := run(ScenarioBaseline, be, []string{base.URL})
			rep.Baseline = &b
			if b.Throughput > 0 {
				ratio := round3(rep.Throughput / b.Throughput)
				rep.BaselineRatio = &ratio
			}
		}
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("client: net/http, keep-alive, HTTP/1.1, MaxIdleConnsPerHost=%d, timeout %s", cfg.Concurrency+16, cfg.Timeout))
	if rep.Mode == "closed" {
		rep.Notes = append(rep.Notes, "closed loop: latencies include coordinated omission; use --rate for publishable percentiles")
	}

	if err := rep.WriteTable(stdout); err != nil {
		return rep, err
	}
	if cfg.JSONPath != "" {
		if err := rep.WriteJSON(cfg.JSONPath); err != nil {
			return rep, fmt.Errorf("writing --json: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", cfg.JSONPath)
	}
	if cfg.PlotPath != "" {
		if err := rep.WriteSVGFile(cfg.PlotPath); err != nil {
			return rep, fmt.Errorf("writing --plot: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", cfg.PlotPath)
	}
	return rep, nil
}

func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
