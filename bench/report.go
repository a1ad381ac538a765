package bench

import (
	"encoding/json"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// OpResult is the statistics of one operation kind within a run.
type OpResult struct {
	Requests   int64          `json:"requests"`
	Errors     int64          `json:"errors"`
	Throughput float64        `json:"throughput_rps"`
	Latency    LatencySummary `json:"latency_us"`
}

// Result is one measured run (the scenario, or the baseline).
type Result struct {
	Scenario    string              `json:"scenario"`
	Mode        string              `json:"mode"` // closed or open
	Concurrency int                 `json:"concurrency"`
	Rate        float64             `json:"rate_rps,omitempty"`
	Targets     []string            `json:"targets"`
	Duration    float64             `json:"duration_s"` // measured phase actually run
	Warmup      float64             `json:"warmup_s"`
	Requests    int64               `json:"requests"`
	Errors      int64               `json:"errors"`
	ErrorsBy    map[string]int64    `json:"errors_by_status"`
	Throughput  float64             `json:"throughput_rps"`
	Latency     LatencySummary      `json:"latency_us"`
	Ops         map[string]OpResult `json:"ops"`
	Curve       []CurvePoint        `json:"percentile_curve"`
	Timeline    []TimelinePoint     `json:"timeline"`
	Visibility  *VisibilityResult   `json:"visibility,omitempty"`
	Stopped     string              `json:"stopped_early,omitempty"`
	Cancelled   bool                `json:"cancelled,omitempty"`
}

// VisibilityResult counts the validations made right after acknowledged
// writes and how many contradicted them (must be 0).
type VisibilityResult struct {
	Checks int64 `json:"checks"`
	Stale  int64 `json:"stale"`
}

// Machine describes where the numbers came from.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	CPUModel   string `json:"cpu_model,omitempty"`
}

// Report is the whole output of one invocation, as written by --json.
type Report struct {
	Tool      string    `json:"tool"`
	Version   int       `json:"format_version"`
	StartedAt time.Time `json:"started_at"`
	Command   []string  `json:"command,omitempty"`
	Spawned   int       `json:"spawned_nodes"`
	Machine   Machine   `json:"machine"`
	Result
	Baseline      *Result  `json:"baseline,omitempty"`
	BaselineRatio *float64 `json:"baseline_ratio,omitempty"` // scenario throughput / baseline throughput
	Notes         []string `json:"notes,omitempty"`
}

func newResult(name string, spec loadSpec, targets []string, out *runOutput) Result {
	all := out.Total.all()
	secs := out.Elapsed.Seconds()
	tput := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return round3(float64(n) / secs)
	}
	r := Result{
		Scenario:    name,
		Mode:        "closed",
		Concurrency: spec.Concurrency,
		Rate:        spec.Rate,
		Targets:     targets,
		Duration:    round3(secs),
		Warmup:      spec.Warmup.Seconds(),
		Requests:    all.TotalCount(),
		Errors:      out.Total.errorCount(),
		ErrorsBy:    out.Total.errs,
		Throughput:  tput(all.TotalCount()),
		Latency:     summarize(all),
		Ops:         map[string]OpResult{},
		Curve:       percentileCurve(all),
		Timeline:    out.Timeline,
		Stopped:     out.Stopped,
		Cancelled:   out.Cancelled,
	}
	if spec.Rate > 0 {
		r.Mode = "open"
	}
	for k, h := range out.Total.kinds {
		r.Ops[k] = OpResult{Requests: h.TotalCount(), Errors: out.Total.kindErrs[k], Throughput: tput(h.TotalCount()), Latency: summarize(h)}
	}
	if name == ScenarioVisibility {
		r.Visibility = &VisibilityResult{Checks: out.Total.checks, Stale: out.Total.stale}
	}
	if r.Timeline == nil {
		r.Timeline = []TimelinePoint{}
	}
	return r
}

func machine() Machine {
	m := Machine{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(string(b))
	}
	return m
}

func cpuModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
