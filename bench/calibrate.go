package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Calibration answers "is the load tool the bottleneck?". It drives one
// bare baseline server (the same child process as the baseline scenario)
// with wrk and with tokend-bench's own client, same connections and same
// duration, back to back, and reports both rates. wrk is a small C event
// loop whose per-request cost is close to nothing; if tokend-bench reaches
// within CalibrationLimit of wrk's rate, the server (and not the client)
// sets the pace in tokend-bench's numbers.
//
// On a shared machine other work only ever slows a run down, so each tool
// runs Rounds times, alternating which goes first, and its best run is the
// one compared: the least disturbed estimate of what it can do.

// CalibrationLimit is the most wrk's rate may exceed tokend-bench's by
// (issue 10: the client must cost within 1.3x of wrk per request).
const CalibrationLimit = 1.3

// CalibrateOptions configure Calibrate.
type CalibrateOptions struct {
	Connections []int         // one row per value
	Warmup      time.Duration // each tool's discarded run before its measured one
	Duration    time.Duration // each tool's measured run (whole seconds: wrk's unit)
	Rounds      int           // runs of each tool per row, alternating; the best counts
	Self        string        // serves the baseline in a child process; "" serves it in this one
	Wrk         string        // wrk binary; "" looks it up on PATH
	Stderr      io.Writer     // diagnostics
}

// CalibrationRow is one connection count.
type CalibrationRow struct {
	Connections int       `json:"connections"`
	Wrk         float64   `json:"wrk_rps"`          // best round; 0 when wrk is unavailable or failed
	Bench       float64   `json:"tokend_bench_rps"` // best round
	WrkRuns     []float64 `json:"wrk_runs_rps,omitempty"`
	BenchRuns   []float64 `json:"tokend_bench_runs_rps,omitempty"`
	// Ratio is wrk's rate over tokend-bench's; nil without both.
	Ratio *float64 `json:"wrk_over_tokend_bench,omitempty"`
	Err   string   `json:"error,omitempty"`
}

// Calibration is the whole comparison.
type Calibration struct {
	Target   string           `json:"target"`
	Wrk      string           `json:"wrk"` // its path, or why it was not run
	Warmup   time.Duration    `json:"warmup"`
	Duration time.Duration    `json:"duration"`
	Rounds   int              `json:"rounds"`
	Rows     []CalibrationRow `json:"rows"`
}

// Calibrate runs the comparison. Without wrk it still measures
// tokend-bench, and says why wrk is missing.
func Calibrate(ctx context.Context, o CalibrateOptions) (*Calibration, error) {
	secs := max(1, int(math.Ceil(o.Duration.Seconds())))
	o.Duration = time.Duration(secs) * time.Second
	o.Rounds = max(1, o.Rounds)
	cal := &Calibration{Target: "bare baseline, GET /validate", Warmup: o.Warmup, Duration: o.Duration, Rounds: o.Rounds}
	wrk, err := findWrk(o.Wrk)
	if err != nil {
		cal.Wrk = "not run: " + err.Error()
	} else {
		cal.Wrk = wrk
	}
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = "bat_" + randomString(32)
	}
	url, stop, err := startCalibrationTarget(ctx, o.Self, tokens)
	if err != nil {
		return nil, err
	}
	defer stop()
	if o.Self != "" {
		cal.Target += " (a child process, like tokend)"
	} else {
		cal.Target += " (inside this process)"
	}
	for _, c := range o.Connections {
		if ctx.Err() != nil {
			return cal, ctx.Err()
		}
		row := calibrateRow(ctx, o, wrk, url, tokens, c)
		cal.Rows = append(cal.Rows, row)
	}
	return cal, nil
}

// calibrateRow measures both tools at conns connections, o.Rounds times
// each, alternating which goes first.
func calibrateRow(ctx context.Context, o CalibrateOptions, wrk, url string, tokens []string, conns int) CalibrationRow {
	row := CalibrationRow{Connections: conns}
	var errs []string
	runWrkOnce := func() {
		if wrk == "" || ctx.Err() != nil {
			return
		}
		r, err := runWrk(ctx, wrk, url, tokens[0], conns, o.Warmup, o.Duration)
		if err != nil {
			errs = append(errs, "wrk: "+err.Error())
			return
		}
		row.WrkRuns = append(row.WrkRuns, r)
		row.Wrk = max(row.Wrk, r)
	}
	runBenchOnce := func() {
		if ctx.Err() != nil {
			return
		}
		r := benchBaselineRate(ctx, url, tokens, conns, o.Warmup, o.Duration)
		row.BenchRuns = append(row.BenchRuns, r)
		row.Bench = max(row.Bench, r)
	}
	for i := 0; i < o.Rounds; i++ {
		if i%2 == 0 {
			runWrkOnce()
			runBenchOnce()
		} else {
			runBenchOnce()
			runWrkOnce()
		}
	}
	if row.Wrk > 0 && row.Bench > 0 {
		r := round3(row.Wrk / row.Bench)
		row.Ratio = &r
	}
	row.Err = strings.Join(errs, "; ")
	return row
}

// startCalibrationTarget starts the bare baseline with the synthetic
// /validate shape.
func startCalibrationTarget(ctx context.Context, self string, tokens []string) (string, func(), error) {
	if self != "" {
		bp, err := startBaselineProcess(ctx, self, syntheticShape(), tokens)
		if err != nil {
			return "", nil, err
		}
		return bp.URL, bp.Close, nil
	}
	b, err := startBaseline(newBaselineHandler(syntheticShape(), tokens))
	if err != nil {
		return "", nil, err
	}
	return b.URL, b.Close, nil
}

// benchBaselineRate is tokend-bench's closed-loop rate against url: the
// baseline scenario, without a progress line.
func benchBaselineRate(ctx context.Context, url string, tokens []string, conns int, warmup, dur time.Duration) float64 {
	e := &env{nodes: []node{newNode(url)}, timeout: DefaultConfig().Timeout, pool: newTokenPool(tokens, 0)}
	spec := loadSpec{
		Concurrency: conns, Duration: dur, Warmup: warmup, MaxRequests: MaxRequests,
		Interval: time.Second, Seed: randomSeed(),
	}
	out := runLoad(ctx, spec, newScenario(ScenarioBaseline, e, nil), nil)
	if out.Elapsed <= 0 {
		return 0
	}
	return round3(float64(out.Total.count()) / out.Elapsed.Seconds())
}

func findWrk(path string) (string, error) {
	if path == "" {
		path = "wrk"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("wrk not found (install it, or give --wrk): %w", err)
	}
	return p, nil
}

// runWrk runs wrk for warmup (discarded), then for dur, with as many
// threads as CPUs (at most one per connection), and returns its rate.
func runWrk(ctx context.Context, wrk, url, token string, conns int, warmup, dur time.Duration) (float64, error) {
	run := func(d time.Duration) (float64, error) {
		secs := max(1, int(math.Ceil(d.Seconds())))
		args := []string{
			"-t", strconv.Itoa(min(conns, runtime.NumCPU())), "-c", strconv.Itoa(conns),
			"-d", strconv.Itoa(secs) + "s", "--timeout", "10s",
			"-H", "Authorization: Bearer " + token, url + "/validate",
		}
		out, err := exec.CommandContext(ctx, wrk, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%w: %s", err, firstLine(strings.TrimSpace(string(out))))
		}
		return parseWrk(string(out))
	}
	if warmup > 0 {
		if _, err := run(warmup); err != nil {
			return 0, err
		}
	}
	return run(dur)
}

// parseWrk reads the rate from wrk's report, refusing one where some
// answers were not 2xx or some requests failed (the rate would not be the
// rate of the work measured).
func parseWrk(out string) (float64, error) {
	rate := -1.0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return 0, fmt.Errorf("wrk rate %q: %w", line, err)
			}
			rate = v
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"), strings.HasPrefix(line, "Socket errors:"):
			return 0, fmt.Errorf("wrk saw failures: %s", line)
		}
	}
	if rate < 0 {
		return 0, errors.New("no Requests/sec in wrk's output")
	}
	return rate, nil
}
