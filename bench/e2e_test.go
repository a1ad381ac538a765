//go:build unix

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestEndToEndSpawnOne builds the real tokend and tokend-bench into one
// temporary directory and runs `tokend-bench --spawn 1 --duration 2s`,
// which must find tokend beside itself, seed through the admin API, and
// report non-zero throughput, zero errors and a well-formed JSON file.
//
// It needs the real server: until ./cmd/tokend builds and serves the
// contract, it fails saying so (it deliberately does not skip).
func TestEndToEndSpawnOne(t *testing.T) {
	dir := t.TempDir()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := func(pkg, out string) {
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = ".." // module root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("e2e: `go build %s` failed, so the end-to-end bench cannot run yet "+
				"(the tokend server must exist and build for this test to pass):\n%s", pkg, b)
		}
	}
	build("./cmd/tokend", "tokend")
	build("./cmd/tokend-bench", "tokend-bench")

	jsonPath := filepath.Join(dir, "result.json")
	svgPath := filepath.Join(dir, "result.svg")
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "tokend-bench"),
		"--spawn", "1", "--duration", "2s", "--warmup", "500ms", "--tokens", "200",
		"--concurrency", "8", "--json", jsonPath, "--plot", svgPath, "validate")
	cmd.Env = os.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("e2e: tokend-bench --spawn 1 failed (%v); if the message below names a missing endpoint, "+
			"the server does not serve the contract yet.\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("tokend-bench output:\n%s", stdout.String())

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("e2e: no JSON file: %v", err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("e2e: JSON file is not well-formed: %v\n%s", err, raw)
	}
	if rep.Scenario != ScenarioValidate || rep.Spawned != 1 {
		t.Fatalf("e2e: scenario %q spawned %d", rep.Scenario, rep.Spawned)
	}
	if rep.Requests == 0 || rep.Throughput <= 0 {
		t.Fatalf("e2e: zero throughput: %+v", rep.Result)
	}
	if rep.Errors != 0 {
		t.Fatalf("e2e: %d errors: %v", rep.Errors, rep.ErrorsBy)
	}
	if rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 {
		t.Fatalf("e2e: implausible latency summary %+v", rep.Latency)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatalf("e2e: no plot: %v", err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Fatalf("e2e: plot is not well-formed XML: %v", err)
	}
}
