package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleReport builds a report from a synthetic run, with a baseline.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	mk := func(name string, scale int) Result {
		iv := newInterval()
		h := newHist()
		for i := 1; i <= 5000; i++ {
			recordLatency(h, time.Duration(i*scale)*time.Microsecond)
		}
		iv.kinds[name] = h
		iv.errs["503"] = 3
		out := &runOutput{Total: iv, Elapsed: 2 * time.Second, Timeline: []TimelinePoint{
			{T: 1, Seconds: 1, Requests: 2400, Throughput: 2400, P50: 100, P99: 900, Max: 1000},
			{T: 2, Seconds: 1, Requests: 2600, Throughput: 2600, P50: 110, P99: 950, Max: 1200},
		}}
		return newResult(name, loadSpec{Concurrency: 8, Warmup: time.Second}, []string{"http://127.0.0.1:1"}, out)
	}
	rep := &Report{Tool: "tokend-bench", Version: 1, Machine: machine(), Result: mk("validate <&>", 2)}
	b := mk(ScenarioBaseline, 1)
	rep.Baseline = &b
	ratio := 0.8
	rep.BaselineRatio = &ratio
	rep.Notes = []string{"a note"}
	return rep
}

func TestJSONOutput(t *testing.T) {
	rep := sampleReport(t)
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	for _, k := range []string{"scenario", "throughput_rps", "latency_us", "errors_by_status", "percentile_curve",
		"timeline", "baseline", "baseline_ratio", "machine", "requests", "errors", "ops"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	lat := m["latency_us"].(map[string]any)
	for _, k := range []string{"p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_us lacks %q", k)
		}
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Requests != 5000 || back.Throughput != 2500 || *back.BaselineRatio != 0.8 || back.ErrorsBy["503"] != 3 {
		t.Fatalf("round trip: %+v", back.Result)
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	for _, withBaseline := range []bool{true, false} {
		rep := sampleReport(t)
		if !withBaseline {
			rep.Baseline, rep.BaselineRatio = nil, nil
		}
		var buf bytes.Buffer
		if err := rep.WriteSVG(&buf); err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(&buf)
		var root string
		counts := map[string]int{}
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if root == "" {
					root = se.Name.Local
					if se.Name.Space != "http://www.w3.org/2000/svg" {
						t.Fatalf("root namespace %q", se.Name.Space)
					}
				}
				counts[se.Name.Local]++
			}
		}
		if root != "svg" {
			t.Fatalf("root element %q", root)
		}
		want := 2
		if withBaseline {
			want = 4
		}
		if counts["polyline"] != want {
			t.Fatalf("polylines = %d, want %d", counts["polyline"], want)
		}
	}
}

func TestSVGEmptyResult(t *testing.T) {
	rep := &Report{Result: newResult("validate", loadSpec{Concurrency: 1}, nil, &runOutput{Total: newInterval()})}
	var buf bytes.Buffer
	if err := rep.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(buf.Bytes(), new(struct{})); err != nil {
		t.Fatalf("empty SVG: %v", err)
	}
	if strings.Contains(buf.String(), "NaN") || strings.Contains(buf.String(), "Inf") {
		t.Fatalf("SVG has NaN/Inf coordinates")
	}
}

func TestTable(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, want := range []string{"p50", "p90", "p99", "p99.9", "max", "req/s", "baseline", "503=3", "0.800×"} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
}

func TestPercentileLabels(t *testing.T) {
	for d, want := range []string{"0%", "90%", "99%", "99.9%", "99.99%"} {
		if got := percentileLabel(float64(d)); got != want {
			t.Errorf("decade %d: %q want %q", d, got, want)
		}
	}
}
