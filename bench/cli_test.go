package bench

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseArgsPositionalScenarioAnywhere(t *testing.T) {
	var out bytes.Buffer
	cfg, err := ParseArgs([]string{"--duration", "3s", "issue-cc", "--concurrency", "7"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scenario != ScenarioIssueCC || cfg.Duration != 3*time.Second || cfg.Concurrency != 7 {
		t.Fatalf("got %+v", cfg)
	}
	if cfg.Spawn != 1 {
		t.Fatalf("no --target should default to --spawn 1, got %d", cfg.Spawn)
	}
	if cfg.JSONPath != "tokend-bench-issue-cc.json" || cfg.PlotPath != "tokend-bench-issue-cc.svg" {
		t.Fatalf("default output paths: %q %q", cfg.JSONPath, cfg.PlotPath)
	}
}

func TestParseArgsBaselineNeedsNoServer(t *testing.T) {
	cfg, err := ParseArgs([]string{"baseline"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Spawn != 0 || len(cfg.Targets) != 0 {
		t.Fatalf("baseline alone should not spawn: %+v", cfg)
	}
}

func TestParseArgsErrors(t *testing.T) {
	cases := map[string][]string{
		"remote host":        {"--target", "http://10.0.0.1:8080", "--admin-token", "x"},
		"public name":        {"--target", "http://example.com", "--admin-token", "x"},
		"no admin token":     {"--target", "http://127.0.0.1:8080"},
		"target and spawn":   {"--target", "http://127.0.0.1:8080", "--spawn", "2", "--admin-token", "x"},
		"spawn 0":            {"--spawn", "0"},
		"too many nodes":     {"--spawn", "50"},
		"unknown scenario":   {"nope"},
		"two scenarios":      {"validate", "revoke"},
		"unbounded duration": {"--duration", "2h"},
		"zero requests":      {"--requests", "0"},
		"bad mix":            {"--mix", "validate=1,bogus=2"},
		"zero mix":           {"--mix", "validate=0"},
	}
	for name, args := range cases {
		if _, err := ParseArgs(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := ParseArgs([]string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	help := out.String()
	for _, f := range []string{"target", "spawn", "tokend", "admin-token", "concurrency", "rate", "duration",
		"warmup", "requests", "tokens", "users", "mix", "json", "plot", "compare-baseline", "quiet", "timeout", "interval", "scenario"} {
		if !strings.Contains(help, "-"+f+" ") && !strings.Contains(help, "-"+f+"\n") {
			t.Errorf("--help does not explain -%s", f)
		}
	}
	for _, s := range scenarioNames {
		if !strings.Contains(help, "  "+s+" ") {
			t.Errorf("--help does not describe scenario %s", s)
		}
	}
}
