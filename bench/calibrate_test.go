package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	ok := `Running 5s test @ http://127.0.0.1:1/validate
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.57ms    1.65ms  23.53ms   91.02%
  216672 requests in 5.00s, 30.17MB read
Requests/sec:  43329.15
Transfer/sec:      6.03MB
`
	if r, err := parseWrk(ok); err != nil || r != 43329.15 {
		t.Fatalf("rate %v err %v", r, err)
	}
	for _, bad := range []string{
		"nothing here",
		ok + "  Non-2xx or 3xx responses: 12\n",
		strings.Replace(ok, "Transfer/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nTransfer/sec", 1),
		"Requests/sec: lots\n",
	} {
		if _, err := parseWrk(bad); err == nil {
			t.Fatalf("no error for %q", bad)
		}
	}
}

// fakeWrk is a script that answers like wrk with a fixed rate.
func fakeWrk(t *testing.T, rate string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs a shell script")
	}
	p := filepath.Join(t.TempDir(), "wrk")
	script := "#!/bin/sh\necho \"Running test @ $*\"\necho 'Requests/sec:  " + rate + "'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCalibrateComparesBothTools(t *testing.T) {
	o := CalibrateOptions{Connections: []int{2, 4}, Duration: 200 * time.Millisecond, Rounds: 2, Wrk: fakeWrk(t, "1000000")}
	cal, err := Calibrate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if cal.Duration != time.Second || cal.Rounds != 2 || len(cal.Rows) != 2 {
		t.Fatalf("duration %s rounds %d rows %d", cal.Duration, cal.Rounds, len(cal.Rows))
	}
	for i, r := range cal.Rows {
		if r.Connections != o.Connections[i] || r.Wrk != 1e6 || r.Bench <= 0 || len(r.WrkRuns) != 2 || len(r.BenchRuns) != 2 || r.Err != "" {
			t.Fatalf("row %+v", r)
		}
		if r.Ratio == nil || *r.Ratio != round3(r.Wrk/r.Bench) {
			t.Fatalf("ratio %v for %v / %v", r.Ratio, r.Wrk, r.Bench)
		}
	}
	var out bytes.Buffer
	if err := cal.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1000000") || !strings.Contains(out.String(), "wrk/tokend-bench") {
		t.Fatalf("table:\n%s", out.String())
	}
	var md strings.Builder
	renderSuiteCalibration(&md, cal)
	if !strings.Contains(md.String(), "| 4 | 1000000 |") {
		t.Fatalf("markdown:\n%s", md.String())
	}
}

func TestCalibrateWithoutWrkMeasuresTokendBench(t *testing.T) {
	o := CalibrateOptions{Connections: []int{2}, Duration: time.Second, Wrk: filepath.Join(t.TempDir(), "no-wrk")}
	cal, err := Calibrate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	r := cal.Rows[0]
	if !strings.HasPrefix(cal.Wrk, "not run") || r.Wrk != 0 || r.Ratio != nil || r.Bench <= 0 {
		t.Fatalf("wrk %q row %+v", cal.Wrk, r)
	}
}

func TestCalibrateMainFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--connections", "0"}, {"--connections", "a,b"}, {"--rounds", "0"},
		{"--duration", "0s"}, {"extra"},
	} {
		var errOut bytes.Buffer
		if code := CalibrateMain(context.Background(), args, "", &bytes.Buffer{}, &errOut); code != 2 {
			t.Fatalf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
	if code := CalibrateMain(context.Background(), []string{"-h"}, "", &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
}
