package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The baseline runs in a child process of its own by default, so that it
// pays what tokend pays: a separate runtime and scheduler competing with
// the load generator for the same cores, and the cross-process handoff on
// every request. Measured in the bench's own process instead, the baseline
// shares the generator's scheduler and looked about twice as fast as the
// identical handler would in a process of its own, which says more about
// placement than about tokend.

// BaselineChildEnv, set to "1", makes tokend-bench serve the baseline
// (ServeBaseline) instead of running a benchmark.
const BaselineChildEnv = "TOKEND_BENCH_BASELINE_CHILD"

type baselineSpec struct {
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
	Tokens []string    `json:"tokens"`
	// Kind picks the reference server (KindValidate when empty).
	Kind string `json:"kind,omitempty"`
}

// ServeBaseline is the child's side: it reads the response shape and the
// valid tokens as JSON from stdin, serves them on a 127.0.0.1 port, prints
// the URL on stdout, and exits when stdin closes (the parent went away).
func ServeBaseline(stdin io.Reader, stdout io.Writer) error {
	br := bufio.NewReader(stdin)
	var spec baselineSpec
	if err := json.NewDecoder(br).Decode(&spec); err != nil {
		return fmt.Errorf("baseline child: read spec: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ref, err := startReference(ln, spec.Kind, validateShape{Header: spec.Header, Body: spec.Body}, spec.Tokens)
	if err != nil {
		return fmt.Errorf("baseline child: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", ref.URL); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, br) // until the parent closes our stdin
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return ref.shutdown(ctx)
}

// BaselineServerMain is the hidden "tokend-bench baseline-server"
// command: one reference server (--kind) on a 127.0.0.1 address until ctx
// ends, for an outside load generator such as wrk to be pointed at
// (bench/validate-fastpath.sh). It prints the base URL on stdout once it
// is listening, and returns the process's exit code.
func BaselineServerMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokend-bench baseline-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", KindValidate, "reference server: "+strings.Join(referenceKinds, ", "))
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	var tokens stringsFlag
	fs.Var(&tokens, "token", "a token the validating kinds accept (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serveReference(ctx, *kind, *addr, tokens, stdout); err != nil {
		fmt.Fprintln(stderr, "tokend-bench baseline-server:", err)
		return 1
	}
	return 0
}

func serveReference(ctx context.Context, kind, addr string, tokens []string, stdout io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q: only a loopback IP address is allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ref, err := startReference(ln, kind, syntheticShape(), tokens)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, ref.URL); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return ref.shutdown(sctx)
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (f *stringsFlag) String() string     { return strings.Join(*f, ",") }
func (f *stringsFlag) Set(v string) error { *f = append(*f, v); return nil }

// baselineProcess is a running child baseline.
type baselineProcess struct {
	URL   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startBaselineProcess(ctx context.Context, self string, shape validateShape, tokens []string) (*baselineProcess, error) {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), BaselineChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start baseline process: %w", err)
	}
	p := &baselineProcess{cmd: cmd, stdin: stdin}
	if err := json.NewEncoder(stdin).Encode(baselineSpec{Header: shape.Header, Body: shape.Body, Tokens: tokens}); err != nil {
		p.Close()
		return nil, fmt.Errorf("baseline process: send spec: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case u := <-line:
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			p.Close()
			return nil, errors.New("baseline process did not report its address")
		}
		p.URL = u
		return p, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	p.Close()
	return nil, errors.New("baseline process did not start in time")
}

// Close ends the child by closing its stdin, killing it if it lingers.
func (p *baselineProcess) Close() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
