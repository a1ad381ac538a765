package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// verdict says whether a row meets CalibrationLimit.
func (r CalibrationRow) verdict() string {
	switch {
	case r.Ratio == nil:
		return "–"
	case *r.Ratio <= CalibrationLimit:
		return "ok"
	default:
		return "over: the load tool limits this rate"
	}
}

// WriteTable prints the calibration for a terminal.
func (c *Calibration) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\ncalibration: %s, closed loop, each tool %s after %s warmup, back to back, best of %d alternating rounds\n", c.Target, c.Duration, c.Warmup, c.Rounds)
	fmt.Fprintf(&b, "wrk: %s\n\n", c.Wrk)
	fmt.Fprintf(&b, "  %11s  %11s  %18s  %16s\n", "connections", "wrk req/s", "tokend-bench req/s", "wrk/tokend-bench")
	for _, r := range c.Rows {
		ratio := "–"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		wrk := "–"
		if r.Wrk > 0 {
			wrk = fmt.Sprintf("%.0f", r.Wrk)
		}
		fmt.Fprintf(&b, "  %11d  %11s  %18.0f  %16s  %s\n", r.Connections, wrk, r.Bench, ratio, r.verdict())
		fmt.Fprintf(&b, "  %11s  %11s  %18s  (all rounds)\n", "", rates(r.WrkRuns), rates(r.BenchRuns))
		if r.Err != "" {
			fmt.Fprintf(&b, "  (%s)\n", r.Err)
		}
	}
	fmt.Fprintf(&b, "\nwrk/tokend-bench at most %.1f means the server, not the load tool, sets the pace.\n", CalibrationLimit)
	_, err := io.WriteString(w, b.String())
	return err
}

func rates(rs []float64) string {
	if len(rs) == 0 {
		return "–"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.0f", r)
	}
	return strings.Join(parts, " ")
}

// renderSuiteCalibration writes the calibration into the suite's section.
func renderSuiteCalibration(b *strings.Builder, c *Calibration) {
	if c == nil {
		return
	}
	fmt.Fprintf(b, "\n### Load tool calibration\n\n")
	fmt.Fprintf(b, "wrk and tokend-bench against the same %s, closed loop, each %s after %s warmup, back to back, best of %d alternating rounds (`tokend-bench calibrate`). wrk: %s. At most %.1f means the load tool is not the bottleneck.\n\n",
		c.Target, c.Duration, c.Warmup, c.Rounds, mdEscape(c.Wrk), CalibrationLimit)
	b.WriteString("| connections | wrk req/s | tokend-bench req/s | wrk / tokend-bench |\n|---:|---:|---:|---:|\n")
	for _, r := range c.Rows {
		wrk, ratio := "–", "–"
		if r.Wrk > 0 {
			wrk = fmt.Sprintf("%.0f", r.Wrk)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		fmt.Fprintf(b, "| %d | %s | %.0f | %s |\n", r.Connections, wrk, r.Bench, ratio)
	}
}

const calibrateUsage = `Usage: tokend-bench calibrate [--connections 64,256] [--duration 5s] [--rounds 3] [--wrk PATH]

Is the load tool the bottleneck? Starts the bare baseline server (a child
process, like tokend, unless --baseline-in-process) and drives it with wrk
and then with tokend-bench's own client, same connections and duration,
back to back, --rounds times alternating which goes first, for each
connection count. Prints both best rates and their ratio
(wrk / tokend-bench); at most 1.3 means tokend-bench's client is not what
limits its numbers. Without wrk on PATH only tokend-bench is measured.

Flags:
`

// CalibrateMain is the calibrate subcommand; it returns the exit code.
func CalibrateMain(ctx context.Context, args []string, self string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokend-bench calibrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := CalibrateOptions{Self: self, Stderr: stderr}
	conns := fs.String("connections", "64,256", "comma-separated connection counts, one row each (1-10000)")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "each tool's measured run, rounded up to whole seconds")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "each tool's discarded run before it")
	fs.IntVar(&o.Rounds, "rounds", 3, "runs of each tool per connection count, alternating which goes first; the best of each is compared (1-10)")
	fs.StringVar(&o.Wrk, "wrk", "", "`PATH` of wrk (default: wrk on PATH)")
	inProc := fs.Bool("baseline-in-process", false, "serve the baseline inside this process")
	jsonPath := fs.String("json", "", "also write the result as JSON to `FILE`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), calibrateUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var err error
	if o.Connections, err = parseConnections(*conns); err == nil {
		err = checkCalibrateBounds(o, fs.NArg())
	}
	if err != nil {
		fmt.Fprintln(stderr, "tokend-bench calibrate:", err)
		return 2
	}
	if *inProc {
		o.Self = ""
	}
	cal, err := Calibrate(ctx, o)
	if cal != nil {
		_ = cal.WriteTable(stdout)
	}
	if err == nil && *jsonPath != "" {
		err = writeCalibrationJSON(*jsonPath, cal)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tokend-bench calibrate:", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

func parseConnections(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > MaxConcurrency {
			return nil, fmt.Errorf("--connections: %q is not a count between 1 and %d", f, MaxConcurrency)
		}
		out = append(out, n)
	}
	return out, nil
}

func checkCalibrateBounds(o CalibrateOptions, nargs int) error {
	switch {
	case nargs > 0:
		return errors.New("unexpected arguments")
	case o.Duration <= 0 || o.Duration > 10*time.Minute:
		return errors.New("--duration must be positive and at most 10m")
	case o.Rounds < 1 || o.Rounds > 10:
		return errors.New("--rounds must be between 1 and 10")
	case o.Warmup < 0 || o.Warmup > time.Minute:
		return errors.New("--warmup must be between 0 and 1m")
	}
	return nil
}

func writeCalibrationJSON(path string, c *Calibration) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
