package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func us(v int64) string { return durationString(time.Duration(v) * time.Microsecond) }

// WriteTable prints the human-readable result.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	load := fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	if r.Mode == "open" {
		load = fmt.Sprintf("open loop at %.0f req/s (max %d in flight)", r.Rate, r.Concurrency)
	}
	where := fmt.Sprintf("%d target(s)", len(r.Targets))
	if r.Spawned > 0 {
		where = fmt.Sprintf("%d spawned node(s)", r.Spawned)
	}
	fmt.Fprintf(&b, "\n%s: %s, %s, %.2fs measured after %gs warmup\n\n", r.Scenario, load, where, r.Duration, r.Warmup)

	keys := sortedKeys(r.Ops)
	width := len("baseline")
	for _, k := range keys {
		width = max(width, len(k))
	}
	// Right-aligned numbers; names padded so they read left-aligned.
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\trequests\treq/s\tp50\tp90\tp99\tp99.9\tmax\terrors\t\n", width, "op")
	row := func(name string, n int64, tput float64, l LatencySummary, errs string) {
		fmt.Fprintf(tw, "%-*s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", width, name, n, tput,
			us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max), errs)
	}
	if len(keys) > 1 {
		for _, k := range keys {
			o := r.Ops[k]
			row(k, o.Requests, o.Throughput, o.Latency, fmt.Sprint(o.Errors))
		}
	}
	row("all", r.Requests, r.Throughput, r.Latency, fmt.Sprint(r.Errors))
	if r.Baseline != nil {
		row("baseline", r.Baseline.Requests, r.Baseline.Throughput, r.Baseline.Latency, fmt.Sprint(r.Baseline.Errors))
	}
	tw.Flush()

	b.WriteString("\n")
	writeErrors(&b, "errors by status", r.ErrorsBy)
	if r.Baseline != nil && len(r.Baseline.ErrorsBy) > 0 {
		writeErrors(&b, "baseline errors by status", r.Baseline.ErrorsBy)
	}
	if v := r.Visibility; v != nil {
		verdict := "OK"
		if v.Stale > 0 {
			verdict = "VIOLATION"
		}
		fmt.Fprintf(&b, "visibility: %d validations right after acknowledged writes, %d stale (%s)\n", v.Checks, v.Stale, verdict)
	}
	if r.BaselineRatio != nil {
		fmt.Fprintf(&b, "baseline_ratio: %s throughput is %.3f× the bare net/http baseline (%.1f vs %.1f req/s)\n",
			r.Scenario, *r.BaselineRatio, r.Throughput, r.Baseline.Throughput)
	}
	if r.Stopped != "" {
		fmt.Fprintf(&b, "stopped early: %s\n", r.Stopped)
	}
	if r.Cancelled {
		b.WriteString("interrupted: partial results\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeErrors(b *strings.Builder, label string, m map[string]int64) {
	if len(m) == 0 {
		fmt.Fprintf(b, "%s: none\n", label)
		return
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	fmt.Fprintf(b, "%s: %s\n", label, strings.Join(parts, " "))
}
