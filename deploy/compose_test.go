package deploy

import (
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The parts of a Compose file the checks read; fields with several
// syntaxes (short and long) are decoded as any.
type composeFile struct {
	Services map[string]composeService
	Secrets  map[string]struct {
		File        string
		External    bool
		Environment string
	}
}

type composeService struct {
	Image       string
	Build       any
	Hostname    string
	Command     any
	Entrypoint  any
	Environment any
	Ports       []any
	Expose      []any
	Secrets     []any
	Volumes     []any
}

func parseCompose(text string) (composeFile, error) {
	var f composeFile
	if err := yaml.Unmarshal([]byte(text), &f); err != nil {
		return f, fmt.Errorf("compose.yaml: %w", err)
	}
	return f, nil
}

// words turns a Compose command or entrypoint (a string or a list) into
// words.
func words(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

// composeEnv reads environment as a map or a list of NAME=VALUE; a name
// without a value is passed through from the host (a reference).
func composeEnv(v any) (env map[string]string, refs map[string]bool) {
	env, refs = map[string]string{}, map[string]bool{}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if x == nil {
				env[k], refs[k] = "$("+k+")", true
				continue
			}
			env[k] = fmt.Sprint(x)
		}
	case []any:
		for _, x := range v {
			k, val, ok := strings.Cut(fmt.Sprint(x), "=")
			if !ok {
				env[k], refs[k] = "$("+k+")", true
				continue
			}
			env[k] = val
		}
	}
	return env, refs
}

// publishedPort is one entry of a service's ports.
type publishedPort struct {
	hostIP    string
	hostPort  string
	container int
	proto     string
}

func parsePort(v any) (publishedPort, error) {
	var p publishedPort
	switch v := v.(type) {
	case map[string]any:
		t, err := strconv.Atoi(fmt.Sprint(v["target"]))
		if err != nil {
			return p, fmt.Errorf("port %v: target: %v", v, err)
		}
		p.container = t
		if x, ok := v["published"]; ok {
			p.hostPort = fmt.Sprint(x)
		}
		if x, ok := v["host_ip"]; ok {
			p.hostIP = fmt.Sprint(x)
		}
		if x, ok := v["protocol"]; ok {
			p.proto = fmt.Sprint(x)
		}
	default:
		s := fmt.Sprint(v)
		s, p.proto, _ = strings.Cut(s, "/")
		if strings.HasPrefix(s, "[") { // [::1]:8081:8080
			end := strings.Index(s, "]")
			if end < 0 {
				return p, fmt.Errorf("port %q: unterminated [", s)
			}
			p.hostIP, s = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		}
		parts := strings.Split(s, ":")
		switch {
		case len(parts) == 3 && p.hostIP == "":
			p.hostIP, p.hostPort = parts[0], parts[1]
		case len(parts) == 2:
			p.hostPort = parts[0]
		case len(parts) == 1:
		default:
			return p, fmt.Errorf("port %q: cannot parse", fmt.Sprint(v))
		}
		c, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			return p, fmt.Errorf("port %q: the container port must be one number (no ranges here)", fmt.Sprint(v))
		}
		p.container = c
	}
	p.proto = strings.ToLower(cmpOr(p.proto, "tcp"))
	return p, nil
}

// checkCompose checks the services of compose.yaml that run tokend serve.
// ignored says whether a path (relative to the Compose file) is
// git-ignored.
func checkCompose(f composeFile, fs flagSet, imageEnv map[string]string, ignored func(string) bool) []string {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	type svc struct {
		name  string
		s     composeService
		n     *node
		l     listeners
		names []string // what other services may call it
	}
	var nodes []*svc
	for _, name := range sortedKeys(f.Services) {
		s := f.Services[name]
		if !strings.Contains(s.Image, "tokend") && s.Build == nil {
			continue
		}
		if ep := words(s.Entrypoint); len(ep) > 0 && path.Base(ep[0]) != "tokend" {
			continue
		}
		args := words(s.Command)
		if len(args) > 0 && args[0] != "serve" {
			continue
		}
		if len(args) > 0 {
			args = args[1:]
		}
		env, refs := composeEnv(s.Environment)
		n := &node{where: "compose.yaml: service " + name, args: args, env: env, refs: refs, imageEnv: imageEnv}
		x := &svc{name: name, s: s, n: n, names: []string{name}}
		if s.Hostname != "" {
			x.names = append(x.names, s.Hostname)
		}
		problems = append(problems, checkNode(n, fs)...)
		x.l, _ = n.listeners(fs)
		nodes = append(nodes, x)
	}
	if len(nodes) == 0 {
		return append(problems, "compose.yaml: no service runs tokend serve")
	}

	byName := map[string]*svc{}
	for _, x := range nodes {
		for _, nm := range x.names {
			byName[nm] = x
		}
	}
	ids := map[string]string{}
	issuers := map[string][]string{}
	hostPorts := map[string]string{}
	for _, x := range nodes {
		n, l := x.n, x.l
		id, _ := n.setting(fs, "node-id")
		if other, dup := ids[id]; dup {
			add("%s: node id %q is also %s's", n.where, id, other)
		}
		ids[id] = x.name
		iss, _ := n.setting(fs, "issuer")
		issuers[iss] = append(issuers[iss], x.name)
		if n.isCluster(fs) {
			if be, _ := n.setting(fs, "bootstrap-expect"); be != strconv.Itoa(len(nodes)) {
				add("%s: --bootstrap-expect %s, but %d services run tokend serve", n.where, be, len(nodes))
			}
		}

		// Addresses: its own name (advertised to the others), reachable.
		for _, flag := range []string{"http-addr", "raft-addr", "gossip-addr"} {
			v, _ := n.setting(fs, flag)
			host, _, err := addrPort(v)
			if err != nil {
				continue
			}
			if other, ok := byName[host]; ok && other != x {
				add("%s: --%s %s names service %s, not this one", n.where, flag, v, other.name)
			}
			if flag == "http-addr" && isLoopback(host) {
				add("%s: --http-addr %s is loopback inside the container: published ports cannot reach it", n.where, v)
			}
		}
		join, _ := n.setting(fs, "join")
		for _, j := range splitList(join) {
			host, port, err := addrPort(j)
			if err != nil {
				continue
			}
			peer, ok := byName[host]
			if !ok {
				add("%s: --join %s: no tokend service is called %q", n.where, j, host)
				continue
			}
			if port != peer.l.gossip {
				add("%s: --join %s: %s gossips on port %d", n.where, j, peer.name, peer.l.gossip)
			}
		}

		// Published ports: OAuth anywhere, admin on loopback only, the
		// internal and gossip ports never.
		for _, raw := range x.s.Ports {
			p, err := parsePort(raw)
			if err != nil {
				add("%s: %v", n.where, err)
				continue
			}
			switch {
			case p.container == l.raft || p.container == l.gossip:
				add("%s: publishes %d/%s on the host; the internal and gossip ports stay on the Compose network", n.where, p.container, p.proto)
			case p.container == l.admin && l.admin != 0 && p.proto == "tcp":
				if !isLoopback(p.hostIP) {
					add("%s: publishes the admin port %d on %q; publish it on 127.0.0.1 only", n.where, p.container, cmpOr(p.hostIP, "every address"))
				}
			case p.container == l.http && p.proto == "tcp":
			default:
				add("%s: publishes %d/%s, which matches no listener of tokend serve", n.where, p.container, p.proto)
			}
			if p.hostPort != "" {
				key := cmpOr(p.hostIP, "*") + ":" + p.hostPort + "/" + p.proto
				if other, dup := hostPorts[key]; dup {
					add("%s: host port %s is also published by %s", n.where, key, other)
				}
				hostPorts[key] = x.name
			}
		}
		for _, raw := range x.s.Expose {
			p, err := parsePort(raw)
			if err != nil || !slices.Contains([]int{l.http, l.raft, l.gossip, l.admin}, p.container) {
				add("%s: expose %v matches no listener of tokend serve", n.where, raw)
			}
		}

		// Secret files are Compose secrets, from git-ignored files.
		mounted := map[string]string{}
		for _, raw := range x.s.Secrets {
			var source, target string
			switch v := raw.(type) {
			case map[string]any:
				source = fmt.Sprint(v["source"])
				if t, ok := v["target"]; ok {
					target = fmt.Sprint(t)
				}
			default:
				source = fmt.Sprint(v)
			}
			target = cmpOr(target, source)
			if !path.IsAbs(target) {
				target = "/run/secrets/" + target
			}
			mounted[target] = source
			top, ok := f.Secrets[source]
			switch {
			case !ok:
				add("%s: secret %q is not declared under the top-level secrets", n.where, source)
			case top.File != "" && !ignored(top.File):
				add("compose.yaml: secret %q: file %s is not git-ignored, so a generated key could be committed", source, top.File)
			}
		}
		for _, flag := range fs.secretFileFlags() {
			v, set := n.setting(fs, flag)
			if !set || v == "" {
				continue
			}
			if _, ok := mounted[v]; !ok {
				add("%s: --%s %s is not a Compose secret this service mounts", n.where, flag, v)
			}
		}

		// The data directory is a volume.
		dataDir, _ := n.setting(fs, "data-dir")
		persistent := false
		for _, raw := range x.s.Volumes {
			var target, typ string
			switch v := raw.(type) {
			case map[string]any:
				target, typ = fmt.Sprint(v["target"]), fmt.Sprint(v["type"])
			default:
				parts := strings.Split(fmt.Sprint(v), ":")
				if len(parts) >= 2 {
					target = parts[1]
				} else {
					target = parts[0]
				}
			}
			if _, ok := underDir(dataDir, target); ok && typ != "tmpfs" {
				persistent = true
			}
		}
		if !persistent {
			add("%s: the data directory %q is not on a volume: a recreated container would lose its Raft log", n.where, dataDir)
		}
	}
	if len(issuers) > 1 {
		var parts []string
		for _, iss := range sortedKeys(issuers) {
			parts = append(parts, fmt.Sprintf("%q (%s)", iss, strings.Join(issuers[iss], ", ")))
		}
		add("compose.yaml: one cluster, one issuer; found %s", strings.Join(parts, ", "))
	}
	return problems
}

// gitIgnored says whether a path relative to dir is ignored by git.
func gitIgnored(t *testing.T, dir string) func(string) bool {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Log("git not found: not checking that Compose secret files are git-ignored")
		return func(string) bool { return true }
	}
	return func(p string) bool {
		return exec.Command("git", "-C", dir, "check-ignore", "-q", "--no-index", filepath.Clean(p)+"/probe").Run() == nil ||
			exec.Command("git", "-C", dir, "check-ignore", "-q", "--no-index", filepath.Clean(p)).Run() == nil
	}
}

// TestCompose checks deploy/compose.yaml against tokend serve.
func TestCompose(t *testing.T) {
	fs := serveFlags(t)
	f, err := parseCompose(readRepoFile(t, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Services) != 3 {
		t.Errorf("compose.yaml: %d services, want the three nodes", len(f.Services))
	}
	noProblems(t, checkCompose(f, fs, imageEnv(t), gitIgnored(t, ".")))
}

func TestComposeBroken(t *testing.T) {
	fs := serveFlags(t)
	good := readRepoFile(t, "compose.yaml")
	ignored := gitIgnored(t, ".")
	for _, tc := range []struct {
		name, old, new, want string
		ignored              func(string) bool
	}{
		{name: "unknown variable", old: `TOKEND_LEAVE_ON_TERMINATE: "false"`, new: `TOKEND_LEAVE_ON_TERMINAT: "false"`, want: "TOKEND_LEAVE_ON_TERMINAT is not read"},
		{name: "unknown flag", old: "  secrets: [cluster-key, admin-token]\n  restart", new: "  command: serve --gossip-address tokend1:8301\n  secrets: [cluster-key, admin-token]\n  restart", want: "unknown flag --gossip-address"},
		{name: "no issuer", old: `    TOKEND_ISSUER: "http://127.0.0.1:8081"` + "\n", new: "", want: "--issuer is required"},
		{name: "two issuers", old: `environment: { <<: *env, TOKEND_NODE_ID: tokend2,`, new: `environment: { <<: *env, TOKEND_ISSUER: "http://127.0.0.1:8082", TOKEND_NODE_ID: tokend2,`, want: "one cluster, one issuer"},
		{name: "same node id", old: "TOKEND_NODE_ID: tokend3", new: "TOKEND_NODE_ID: tokend2", want: `node id "tokend2" is also`},
		{name: "advertises another node", old: `TOKEND_RAFT_ADDR: "tokend3:8300"`, new: `TOKEND_RAFT_ADDR: "tokend2:8300"`, want: "--raft-addr tokend2:8300 names service tokend2"},
		{name: "join wrong port", old: "TOKEND_JOIN: tokend1:8301,", new: "TOKEND_JOIN: tokend1:8300,", want: "--join tokend1:8300: tokend1 gossips on port 8301"},
		{name: "join unknown host", old: "tokend2:8301,tokend3:8301", new: "tokend2:8301,tokend4:8301", want: `no tokend service is called "tokend4"`},
		{name: "bootstrap count", old: `TOKEND_BOOTSTRAP_EXPECT: "3"`, new: `TOKEND_BOOTSTRAP_EXPECT: "5"`, want: "--bootstrap-expect 5, but 3 services"},
		{name: "admin on every address", old: `"127.0.0.1:8402:8400"`, new: `"8402:8400"`, want: "publishes the admin port 8400"},
		{name: "internal port published", old: `"127.0.0.1:8083:8080", `, new: `"127.0.0.1:8083:8080", "127.0.0.1:8303:8300", `, want: "publishes 8300/tcp on the host"},
		{name: "published port off", old: `"127.0.0.1:8081:8080"`, new: `"127.0.0.1:8081:8090"`, want: "publishes 8090/tcp, which matches no listener"},
		{name: "same host port", old: `"127.0.0.1:8082:8080"`, new: `"127.0.0.1:8081:8080"`, want: "host port 127.0.0.1:8081/tcp is also published"},
		{name: "key file not a secret", old: "TOKEND_CLUSTER_KEY_FILE: /run/secrets/cluster-key", new: "TOKEND_CLUSTER_KEY_FILE: /data/cluster-key", want: "--cluster-key-file /data/cluster-key is not a Compose secret"},
		{name: "secret not mounted", old: "secrets: [cluster-key, admin-token]", new: "secrets: [cluster-key]", want: "--admin-token-file /run/secrets/admin-token is not a Compose secret"},
		{name: "token in the environment", old: "TOKEND_ADMIN_TOKEN_FILE: /run/secrets/admin-token", new: "TOKEND_ADMIN_TOKEN: Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg=", want: "--admin-token (TOKEND_ADMIN_TOKEN) carries the secret itself"},
		{name: "secret file tracked", old: "", new: "", want: "is not git-ignored", ignored: func(string) bool { return false }},
		{name: "no data volume", old: "volumes: [tokend1:/data]", new: "volumes: [tokend1:/var/tmp]", want: `service tokend1: the data directory "/data" is not on a volume`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			if tc.old != "" {
				bad = mutate(t, good, tc.old, tc.new)
			}
			f, err := parseCompose(bad)
			if err != nil {
				t.Fatal(err)
			}
			ig := ignored
			if tc.ignored != nil {
				ig = tc.ignored
			}
			wantProblem(t, checkCompose(f, fs, imageEnv(t), ig), tc.want)
		})
	}
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string]publishedPort{
		"8080":                     {container: 8080, proto: "tcp"},
		"8081:8080":                {hostPort: "8081", container: 8080, proto: "tcp"},
		"127.0.0.1:8401:8400":      {hostIP: "127.0.0.1", hostPort: "8401", container: 8400, proto: "tcp"},
		"[::1]:8401:8400/tcp":      {hostIP: "::1", hostPort: "8401", container: 8400, proto: "tcp"},
		"0.0.0.0:8301:8301/udp":    {hostIP: "0.0.0.0", hostPort: "8301", container: 8301, proto: "udp"},
		"127.0.0.1:9000-9001:8080": {hostIP: "127.0.0.1", hostPort: "9000-9001", container: 8080, proto: "tcp"},
	} {
		got, err := parsePort(in)
		if err != nil || got != want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"8080-8081", "a:b:c:d", "[::1:80"} {
		if p, err := parsePort(bad); err == nil {
			t.Errorf("parsePort(%q) = %+v, want an error", bad, p)
		}
	}
	got, err := parsePort(map[string]any{"target": 8400, "published": "8401", "host_ip": "127.0.0.1"})
	if err != nil || got != (publishedPort{hostIP: "127.0.0.1", hostPort: "8401", container: 8400, proto: "tcp"}) {
		t.Errorf("long syntax: %+v, %v", got, err)
	}
}
