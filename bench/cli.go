package bench

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

const usageHead = `tokend-bench: load generator and benchmark for tokend.

Usage:
  tokend-bench [flags] [SCENARIO] [flags]
  tokend-bench suite [--out BENCHMARKS.md] [--quick]   the standard suite (make bench)
  tokend-bench calibrate [--connections 64,256]        wrk vs this tool on the bare baseline

It seeds its own OAuth client, users and a pool of pre-issued tokens through
the admin API, runs one scenario for --warmup plus --duration, then prints a
table (throughput, latency percentiles, errors by status) and writes a JSON
file and an SVG plot. Only 127.0.0.1 / localhost targets are accepted.

Targets:
  With neither --target nor --spawn, one local node is spawned (--spawn 1).
  --spawn N starts N tokend nodes on free 127.0.0.1 ports with a temporary
  data directory, forms a cluster, waits for /readyz, and stops them on exit
  (also on Ctrl-C). The tokend binary is --tokend, else the one beside this
  executable, else the one on PATH. Requests are spread over all nodes.

Scenarios (default validate):
  validate        GET /validate with a random pooled access token
  introspect      POST /introspect of a random pooled access token
  issue-cc        POST /token grant_type=client_credentials
  issue-password  POST /token grant_type=password (argon2id: slow by design)
  refresh         POST /token grant_type=refresh_token, following rotation chains
  revoke          POST /revoke, each request consuming one pooled token
  mixed           weighted mix of validate / issue / revoke / introspect (--mix)
  visibility      issue (or revoke) on one node, then at once GET /validate on
                  every other node; answers that disagree are "stale" (must be 0)
  baseline        bare net/http server (a child process of this one unless
                  --baseline-in-process), same handler shape and response bytes
                  as /validate (needs no tokend unless targets given)
  issue-cc-jwt    issue-cc for a client registered with access_token_format
                  jwt: every token signed (RFC 9068 at+jwt)
  validate-jwt    validate with a pool of JWT access tokens

Load models:
  closed loop (default): --concurrency workers, each sends its next request
  when the previous one answered. Finds peak throughput; latencies suffer
  coordinated omission.
  open loop (--rate R): requests have fixed intended send times R per second;
  latency is measured from the intended time, so stalls are not hidden.
  --concurrency is then the limit on requests in flight.

Flags:
`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// ParseArgs parses the tokend-bench command line. The scenario may appear as
// a positional argument anywhere among the flags. -h/--help writes the usage
// to out and returns flag.ErrHelp.
func ParseArgs(args []string, out io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("tokend-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	var targets stringList
	var spawn int
	fs.Var(&targets, "target", "base `URL` of a running node, e.g. http://127.0.0.1:8080 (repeatable; loopback only)")
	fs.IntVar(&spawn, "spawn", 0, "start `N` local tokend nodes (1-9) instead of using --target (default 1 when no --target)")
	fs.StringVar(&cfg.TokendPath, "tokend", "", "`PATH` of the tokend binary for --spawn (default: beside tokend-bench, then PATH)")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "admin bearer `TOKEN` for seeding through /admin/* (required with --target; generated with --spawn)")
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "scenario `NAME` (same as the positional argument)")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "closed loop: concurrent workers; open loop: max requests in flight")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: target `requests/s` (0 = closed loop)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured phase length (max 1h)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "load applied and discarded before the measured phase")
	fs.Int64Var(&cfg.Requests, "requests", cfg.Requests, "stop after this many measured requests, whichever of --duration and --requests comes first")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "bucket width for throughput over time and the progress line")
	fs.IntVar(&cfg.Tokens, "tokens", cfg.Tokens, "access tokens to pre-issue (client_credentials) for validate/introspect/revoke/mixed")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "users to create for issue-password and refresh (argon2id makes each login slow)")
	fs.StringVar(&cfg.Mix, "mix", cfg.Mix, "mixed scenario weights: comma-separated op=weight, ops validate, issue, revoke, introspect")
	fs.StringVar(&cfg.JSONPath, "json", "tokend-bench-SCENARIO.json", "write the result as JSON to `FILE` (\"\" to disable)")
	fs.StringVar(&cfg.PlotPath, "plot", "tokend-bench-SCENARIO.svg", "write an SVG plot (latency percentiles, throughput over time) to `FILE` (\"\" to disable)")
	fs.BoolVar(&cfg.CompareBaseline, "compare-baseline", false, "after the scenario, run the baseline with the same load and report the ratio")
	fs.BoolVar(&cfg.BaselineInProcess, "baseline-in-process", false, "serve the baseline inside the bench process instead of a child process of its own")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no live progress line on stderr")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	switch len(positional) {
	case 0:
	case 1:
		cfg.Scenario = positional[0]
	default:
		return cfg, fmt.Errorf("one scenario expected, got %q", positional)
	}
	spawnSet := false
	fs.Visit(func(f *flag.Flag) { spawnSet = spawnSet || f.Name == "spawn" })
	cfg.Targets = targets
	cfg.Spawn = spawn
	if !spawnSet {
		if len(targets) == 0 && cfg.Scenario != ScenarioBaseline {
			cfg.Spawn = 1
		}
	} else if spawn < 1 {
		return cfg, fmt.Errorf("--spawn must be between 1 and %d", MaxSpawn)
	}
	cfg.JSONPath = strings.ReplaceAll(cfg.JSONPath, "SCENARIO", cfg.Scenario)
	cfg.PlotPath = strings.ReplaceAll(cfg.PlotPath, "SCENARIO", cfg.Scenario)
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if len(cfg.Targets) > 0 && cfg.AdminToken == "" {
		return cfg, fmt.Errorf("--admin-token is required with --target (the bench seeds its own client and tokens)")
	}
	return cfg, nil
}

// durationString is a compact rendering used in tables.
func durationString(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
