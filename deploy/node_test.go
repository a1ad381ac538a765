// Package deploy holds no code, only tests: they check the deployment files
// in this directory (the images, Compose, Kubernetes, systemd) against the
// tokend binary built from this tree, and build and inspect the offline
// image when podman is installed.
//
// The manifest checks are plain functions that return the problems they
// find; the tests run them on the real files (no problems allowed) and on
// deliberately broken copies (the expected problem must be reported).
package deploy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// tokendBin builds ./cmd/tokend once per test binary (the build cache makes
// this a link after `make build`).
func tokendBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "tokend-deploy-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "tokend")
		out, err := exec.Command("go", "build", "-o", buildBin, "../cmd/tokend").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ../cmd/tokend: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// flagInfo is one flag of `tokend serve --help`.
type flagInfo struct {
	name string
	// kind is the type word the flag package prints: "" for a bool,
	// else string, int, uint, duration, value, ...
	kind string
	// def is the default as printed (strings unquoted), "" if none.
	def string
}

// flagSet is the flags of `tokend serve`, by name.
type flagSet map[string]flagInfo

var (
	serveFlagsOnce sync.Once
	serveFlagsSet  flagSet
	serveFlagsErr  error
)

// serveFlags runs `tokend serve --help` on the binary built from this tree:
// whatever flags serve.go declares today are the ones the deployment files
// may use.
func serveFlags(t *testing.T) flagSet {
	t.Helper()
	bin := tokendBin(t)
	serveFlagsOnce.Do(func() {
		out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
		if err != nil {
			serveFlagsErr = fmt.Errorf("tokend serve --help: %v\n%s", err, out)
			return
		}
		serveFlagsSet, serveFlagsErr = parseHelp(string(out))
	})
	if serveFlagsErr != nil {
		t.Fatal(serveFlagsErr)
	}
	return serveFlagsSet
}

var (
	helpFlagLine = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?: ([a-z0-9]+))?$`)
	helpDefault  = regexp.MustCompile(`\(default (.*)\)$`)
)

// parseHelp reads the flag package's usage output: "  -name type" and then
// the usage, indented by four spaces and a tab, ending in "(default X)".
func parseHelp(help string) (flagSet, error) {
	flags := flagSet{}
	var cur *flagInfo
	flush := func() {
		if cur != nil {
			flags[cur.name] = *cur
		}
	}
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		if m := helpFlagLine.FindStringSubmatch(line); m != nil {
			flush()
			cur = &flagInfo{name: m[1], kind: m[2]}
			continue
		}
		if cur == nil || !strings.HasPrefix(line, "    \t") {
			continue
		}
		if m := helpDefault.FindStringSubmatch(line); m != nil {
			cur.def = m[1]
			if u, err := strconv.Unquote(m[1]); err == nil {
				cur.def = u
			}
		}
	}
	flush()
	for _, must := range []string{"http-addr", "raft-addr", "gossip-addr", "admin-addr", "issuer", "cluster-key-file", "admin-token-file", "join", "bootstrap-expect", "data-dir"} {
		if _, ok := flags[must]; !ok {
			return nil, fmt.Errorf("tokend serve --help: no --%s found (the help format changed?):\n%s", must, help)
		}
	}
	return flags, nil
}

// envName is cmd/tokend's envName: the variable a flag also reads.
func envName(flag string) string {
	return "TOKEND_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// argvOnly are the flags tokend serve reads from the command line alone
// (parseWithEnv's argvOnly in cmd/tokend/serve.go): TOKEND_DEV is refused.
var argvOnly = []string{"dev"}

// byEnv returns the flag that reads the variable key.
func (fs flagSet) byEnv(key string) (flagInfo, bool) {
	for _, f := range fs {
		if envName(f.name) == key && !slices.Contains(argvOnly, f.name) {
			return f, true
		}
	}
	return flagInfo{}, false
}

// secretValueFlags are the flags that take a secret itself: those with a
// --NAME-file twin (--cluster-key, --admin-token).
func (fs flagSet) secretValueFlags() []string {
	var out []string
	for name := range fs {
		if _, ok := fs[name+"-file"]; ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// secretFileFlags are the flags naming a file that holds a secret: the
// -file twins and the TLS private keys.
func (fs flagSet) secretFileFlags() []string {
	var out []string
	for _, name := range fs.secretValueFlags() {
		out = append(out, name+"-file")
	}
	for name := range fs {
		if strings.HasSuffix(name, "tls-key") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// node is one `tokend serve` process as a deployment file configures it.
type node struct {
	where string
	// args follow "serve" on the command line.
	args []string
	// env is the environment the file gives the process. Values the file
	// does not state (a Kubernetes valueFrom) are "$(ref)".
	env map[string]string
	// refs names the variables set by reference (valueFrom), not by value.
	refs map[string]bool
	// imageEnv is what the image sets (ENV), under env.
	imageEnv map[string]string
}

// setting is the value tokend would use for flag name: the command line
// wins over the environment, then the image's environment, then the
// default. set says whether the deployment file (or image) chose it.
func (n *node) setting(fs flagSet, name string) (value string, set bool) {
	parsed, _ := n.parseArgs(fs)
	if v, ok := parsed[name]; ok {
		return v, true
	}
	if v, ok := n.env[envName(name)]; ok {
		return v, true
	}
	if v, ok := n.imageEnv[envName(name)]; ok {
		return v, true
	}
	return fs[name].def, false
}

// parseArgs reads args the way the flag package does; problems name what
// it would refuse.
func (n *node) parseArgs(fs flagSet) (map[string]string, []string) {
	out := map[string]string{}
	var problems []string
	for i := 0; i < len(n.args); i++ {
		a := n.args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			problems = append(problems, fmt.Sprintf("%s: argument %q: tokend serve takes no positional arguments", n.where, a))
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f, ok := fs[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: unknown flag --%s (not in tokend serve --help)", n.where, name))
			continue
		}
		if !hasValue {
			if f.kind == "" {
				value = "true"
			} else if i+1 < len(n.args) {
				i++
				value = n.args[i]
			} else {
				problems = append(problems, fmt.Sprintf("%s: flag --%s needs a value", n.where, name))
				continue
			}
		}
		if f.kind == "value" { // lists: repeated flags add up
			if prev, ok := out[name]; ok {
				value = prev + "," + value
			}
		}
		out[name] = value
	}
	return out, problems
}

// checkValue reports a value the flag's type would refuse.
func checkValue(f flagInfo, v string) error {
	if strings.Contains(v, "$(") { // filled in by the platform
		return nil
	}
	var err error
	switch f.kind {
	case "":
		_, err = strconv.ParseBool(v)
	case "int":
		_, err = strconv.ParseInt(v, 0, 0)
	case "uint":
		_, err = strconv.ParseUint(v, 0, 0)
	case "duration":
		_, err = time.ParseDuration(v)
	}
	return err
}

// listeners are a node's ports; admin is 0 when --admin-addr is off.
type listeners struct {
	http, raft, gossip, admin int
}

// addrPort returns the port of a HOST:PORT value.
func addrPort(v string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a port number", p)
	}
	return host, port, nil
}

func (n *node) listeners(fs flagSet) (listeners, []string) {
	var l listeners
	var problems []string
	for _, x := range []struct {
		flag string
		port *int
	}{{"http-addr", &l.http}, {"raft-addr", &l.raft}, {"gossip-addr", &l.gossip}, {"admin-addr", &l.admin}} {
		v, _ := n.setting(fs, x.flag)
		if v == "" {
			continue
		}
		_, p, err := addrPort(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: --%s %q: %v", n.where, x.flag, v, err))
			continue
		}
		*x.port = p
	}
	return l, problems
}

// isCluster says whether the node is part of a cluster (more than one
// bootstrap server, or joining).
func (n *node) isCluster(fs flagSet) bool {
	be, _ := n.setting(fs, "bootstrap-expect")
	join, _ := n.setting(fs, "join")
	return (be != "" && be != "1") || join != ""
}

// looksLikeSecret says whether v looks like a key or token rather than a
// name, address or path: long, in a base64 alphabet, decoding to at least
// 30 bytes.
func looksLikeSecret(v string) bool {
	if len(v) < 40 {
		return false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && len(b) >= 30 {
			return true
		}
	}
	return false
}

func isUnspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkNode is what every deployment file must get right for each node:
// flags and variables tokend knows, with values their types accept; no
// secret value on the command line or in the environment; advertised
// addresses the other nodes can dial; and what a cluster requires.
func checkNode(n *node, fs flagSet) []string {
	_, problems := n.parseArgs(fs)
	add := func(format string, a ...any) {
		problems = append(problems, n.where+": "+fmt.Sprintf(format, a...))
	}
	parsed, _ := n.parseArgs(fs)
	for name, v := range parsed {
		if err := checkValue(fs[name], v); err != nil {
			add("--%s %q: %v", name, v, err)
		}
		if name == "dev" {
			add("--dev is a laptop demo, not a deployment")
		}
		if looksLikeSecret(v) {
			add("--%s: the value looks like a key or token; secrets go in mounted files", name)
		}
	}
	for _, k := range sortedKeys(n.env) {
		v := n.env[k]
		if looksLikeSecret(v) {
			add("%s: the value looks like a key or token; secrets go in mounted files", k)
		}
		if !strings.HasPrefix(k, "TOKEND_") {
			continue
		}
		if k == "TOKEND_DEV" {
			add("TOKEND_DEV: tokend serve refuses to start with it")
			continue
		}
		f, ok := fs.byEnv(k)
		if !ok {
			add("%s is not read by tokend serve (no such flag in tokend serve --help)", k)
			continue
		}
		if n.refs[k] {
			continue
		}
		if strings.Contains(v, " #") || strings.Contains(v, "\t#") {
			add("%s=%q: a comment after a value becomes part of the value", k, v)
		}
		if err := checkValue(f, v); err != nil {
			add("%s=%q: %v", k, v, err)
		}
	}
	for _, name := range fs.secretValueFlags() {
		_, inArgs := parsed[name]
		_, inEnv := n.env[envName(name)]
		if inArgs || inEnv {
			add("--%s (%s) carries the secret itself; mount it as a file and use --%s-file", name, envName(name), name)
		}
	}
	l, lp := n.listeners(fs)
	problems = append(problems, lp...)
	if l.admin != 0 && l.admin == l.http {
		add("--admin-addr and --http-addr share port %d", l.http)
	}
	if !n.isCluster(fs) {
		return problems
	}
	for _, flag := range []string{"raft-addr", "gossip-addr"} {
		v, set := n.setting(fs, flag)
		host, _, err := addrPort(v)
		switch {
		case !set:
			add("--%s is not set: a cluster node must advertise an address the other nodes can dial", flag)
		case err != nil:
		case isUnspecified(host) || isLoopback(host):
			add("--%s %q is advertised to the other nodes: it must be an address they can dial, not %q", flag, v, host)
		}
	}
	if v, set := n.setting(fs, "issuer"); !set || v == "" {
		add("--issuer is required for a cluster (the same URL on every node)")
	}
	if v, _ := n.setting(fs, "cluster-key-file"); v == "" {
		add("--cluster-key-file is required for a cluster")
	}
	if v, _ := n.setting(fs, "node-id"); v == "" || v == fs["node-id"].def {
		add("--node-id must be set: each node needs its own stable name")
	}
	join, _ := n.setting(fs, "join")
	for _, j := range splitList(join) {
		if _, _, err := addrPort(j); err != nil {
			add("--join %q: %v", j, err)
		}
	}
	return problems
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// underDir says whether path is dir or inside it.
func underDir(path, dir string) (rel string, ok bool) {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	if path == dir {
		return ".", true
	}
	if dir == "/" {
		return strings.TrimPrefix(path, "/"), strings.HasPrefix(path, "/")
	}
	if strings.HasPrefix(path, dir+"/") {
		return path[len(dir)+1:], true
	}
	return "", false
}

// readRepoFile reads a file relative to this directory.
func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mutate returns s with old replaced by new exactly once, failing if old
// is not there exactly once (so a broken-manifest test cannot silently
// stop breaking anything when the manifest changes).
func mutate(t *testing.T, s, old, new string) string {
	t.Helper()
	if c := strings.Count(s, old); c != 1 {
		t.Fatalf("mutation: %q occurs %d times, want once", old, c)
	}
	return strings.Replace(s, old, new, 1)
}

// wantProblem fails unless one of problems contains want.
func wantProblem(t *testing.T, problems []string, want string) {
	t.Helper()
	for _, p := range problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Errorf("no problem mentions %q; got:\n  %s", want, strings.Join(problems, "\n  "))
}

func noProblems(t *testing.T, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

var tokendVar = regexp.MustCompile(`\bTOKEND_[A-Z0-9_]*[A-Z0-9]\b`)

// unknownVariables lists the TOKEND_* names in text, comments included
// (commented-out settings are meant to be switched on), that tokend does
// not read.
func unknownVariables(text string, fs flagSet) []string {
	var out []string
	for _, v := range tokendVar.FindAllString(text, -1) {
		if _, ok := fs.byEnv(v); !ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// TestVariablesMentioned: every TOKEND_* variable the deployment files
// name, in settings or in comments, is one tokend reads.
func TestVariablesMentioned(t *testing.T) {
	fs := serveFlags(t)
	paths := []string{"compose.yaml", "Dockerfile", "Containerfile", "image.sh"}
	for _, glob := range []string{"kubernetes/*.yaml", "systemd/*"} {
		m, _ := filepath.Glob(glob)
		paths = append(paths, m...)
	}
	for _, p := range paths {
		for _, v := range unknownVariables(readRepoFile(t, p), fs) {
			t.Errorf("%s names %s, which tokend serve does not read", p, v)
		}
	}
	if got := unknownVariables("#TOKEND_COOKIE_SECURE=true\n# TOKEND_COOKIE_SECURED=1 TOKEND_DEV", fs); !slices.Equal(got, []string{"TOKEND_COOKIE_SECURED", "TOKEND_DEV"}) {
		t.Errorf("unknownVariables = %q", got)
	}
}
