package bench

import (
	"errors"
	"fmt"
	"time"
)

// Scenario names accepted by Config.Scenario.
const (
	ScenarioValidate      = "validate"
	ScenarioIntrospect    = "introspect"
	ScenarioIssueCC       = "issue-cc"
	ScenarioIssuePassword = "issue-password"
	ScenarioRefresh       = "refresh"
	ScenarioRevoke        = "revoke"
	ScenarioMixed         = "mixed"
	ScenarioVisibility    = "visibility"
	ScenarioBaseline      = "baseline"
	// The same operations as validate and issue-cc, with a client whose
	// access tokens are RFC 9068 JWTs (httpapi/jwtaccess.go).
	ScenarioIssueCCJWT  = "issue-cc-jwt"
	ScenarioValidateJWT = "validate-jwt"
)

// ScenarioNames lists every scenario in help order.
var scenarioNames = []string{
	ScenarioValidate, ScenarioIntrospect, ScenarioIssueCC, ScenarioIssuePassword,
	ScenarioRefresh, ScenarioRevoke, ScenarioMixed, ScenarioVisibility, ScenarioBaseline,
	ScenarioIssueCCJWT, ScenarioValidateJWT,
}

// Limits that keep every run bounded.
const (
	MaxDuration    = time.Hour
	MaxRequests    = 1_000_000_000
	MaxSpawn       = 9
	MaxConcurrency = 10_000
	MaxTokens      = 10_000_000
)

// Config is everything one invocation of tokend-bench needs. The zero value
// is not useful; start from DefaultConfig.
type Config struct {
	Scenario string

	Targets    []string // node base URLs; empty means spawn
	Spawn      int      // local nodes to start when Targets is empty
	TokendPath string   // tokend binary for Spawn; empty means look beside the executable, then PATH
	AdminToken string   // bearer token for /admin/*; generated when spawning

	Concurrency int           // closed loop: workers; open loop: max requests in flight
	Rate        float64       // requests per second; 0 means closed loop
	Duration    time.Duration // measured phase
	Warmup      time.Duration // discarded phase before it
	Requests    int64         // upper bound on measured requests
	Timeout     time.Duration // per request
	Interval    time.Duration // throughput-over-time bucket

	Tokens int    // pre-issued access tokens to seed
	Users  int    // resource-owner users to seed
	Mix    string // weights for mixed, e.g. "validate=95,issue=4,revoke=1"

	JSONPath        string // "" disables
	PlotPath        string // "" disables
	CompareBaseline bool
	// BaselineInProcess keeps the baseline server inside this process.
	BaselineInProcess bool
	Quiet             bool // no live progress line

	Args []string // the command line, recorded in the JSON report only
	// BaselineSelf, when set, is an executable that serves the baseline
	// in a child process (tokend-bench itself, with BaselineChildEnv set);
	// empty runs the baseline inside this process.
	BaselineSelf string
}

// DefaultConfig returns the defaults documented in --help.
func DefaultConfig() Config {
	return Config{
		Scenario:    ScenarioValidate,
		Concurrency: 64,
		Duration:    10 * time.Second,
		Warmup:      2 * time.Second,
		Requests:    10_000_000,
		Timeout:     10 * time.Second,
		Interval:    time.Second,
		Tokens:      100_000,
		Users:       4,
		Mix:         "validate=95,issue=4,revoke=1",
	}
}

// Validate checks the config for contradictions and enforces the bounds.
func (c *Config) Validate() error {
	known := false
	for _, n := range scenarioNames {
		if c.Scenario == n {
			known = true
		}
	}
	if !known {
		return fmt.Errorf("unknown scenario %q (want one of %v)", c.Scenario, scenarioNames)
	}
	for _, t := range c.Targets {
		if _, err := CheckTarget(t); err != nil {
			return err
		}
	}
	if len(c.Targets) > 0 && c.Spawn > 0 {
		return errors.New("--target and --spawn are mutually exclusive")
	}
	if c.Spawn < 0 || c.Spawn > MaxSpawn {
		return fmt.Errorf("--spawn must be between 1 and %d", MaxSpawn)
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		return fmt.Errorf("--concurrency must be between 1 and %d", MaxConcurrency)
	}
	if c.Rate < 0 {
		return errors.New("--rate must not be negative")
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		return fmt.Errorf("--duration must be positive and at most %s", MaxDuration)
	}
	if c.Warmup < 0 || c.Warmup > MaxDuration {
		return fmt.Errorf("--warmup must be between 0 and %s", MaxDuration)
	}
	if c.Requests < 1 || c.Requests > MaxRequests {
		return fmt.Errorf("--requests must be between 1 and %d", MaxRequests)
	}
	if c.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	if c.Interval < 10*time.Millisecond {
		return errors.New("--interval must be at least 10ms")
	}
	if c.Tokens < 1 || c.Tokens > MaxTokens {
		return fmt.Errorf("--tokens must be between 1 and %d", MaxTokens)
	}
	if c.Users < 1 || c.Users > 1000 {
		return errors.New("--users must be between 1 and 1000")
	}
	if _, err := ParseMix(c.Mix); err != nil {
		return err
	}
	return nil
}

// Mode is "open" when a rate is set, else "closed".
func (c *Config) Mode() string {
	if c.Rate > 0 {
		return "open"
	}
	return "closed"
}
