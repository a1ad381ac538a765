package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unitEntry is one Key=Value line of a unit file.
type unitEntry struct {
	section, key, value string
	line                int
}

// parseUnit reads a systemd unit file: sections, Key=Value lines,
// comments, backslash continuations.
func parseUnit(text string) ([]unitEntry, error) {
	var out []unitEntry
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	lineNo, pending, pendingLine := 0, "", 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			if pending == "" {
				pendingLine = lineNo
			}
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		if pending != "" {
			line, pending = pending+line, ""
		} else {
			pendingLine = lineNo
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not Key=Value in a section", pendingLine, line)
		}
		out = append(out, unitEntry{section, strings.TrimSpace(k), strings.TrimSpace(v), pendingLine})
	}
	return out, nil
}

func unitValues(entries []unitEntry, section, key string) []string {
	var out []string
	for _, e := range entries {
		if e.section == section && e.key == key {
			if e.value == "" { // an empty assignment resets the list
				out = nil
				continue
			}
			out = append(out, e.value)
		}
	}
	return out
}

// unitBool reads a systemd boolean; the last assignment wins.
func unitBool(entries []unitEntry, section, key string) bool {
	vs := unitValues(entries, section, key)
	if len(vs) == 0 {
		return false
	}
	switch strings.ToLower(vs[len(vs)-1]) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

// unitWords splits Environment= values and command lines: whitespace
// separated, double or single quotes group.
func unitWords(s string) []string {
	var out []string
	var cur strings.Builder
	quote, inWord := byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// parseEnvFile reads an EnvironmentFile: NAME=VALUE lines, # and ;
// comments; quotes around a whole value are removed. Anything after the
// value stays in it, as systemd keeps it.
func parseEnvFile(text string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[strings.TrimSpace(k)] = v
	}
	return env
}

var credentialPath = regexp.MustCompile(`^(?:%d|\$\{CREDENTIALS_DIRECTORY\}|\$CREDENTIALS_DIRECTORY)/([^/]+)$`)

// checkSystemd checks the unit and its documented environment files
// (keyed by base name, as deploy/systemd holds them).
func checkSystemd(unit string, envFiles map[string]string, fs flagSet) []string {
	var problems []string
	add := func(format string, a ...any) {
		problems = append(problems, "systemd/tokend.service: "+fmt.Sprintf(format, a...))
	}
	entries, err := parseUnit(unit)
	if err != nil {
		return []string{"systemd/tokend.service: " + err.Error()}
	}
	const svc = "Service"

	// Who it runs as, and the sandbox.
	user := unitValues(entries, svc, "User")
	if !unitBool(entries, svc, "DynamicUser") {
		switch {
		case len(user) == 0:
			add("runs as root: set DynamicUser=yes or User= a dedicated account")
		case user[len(user)-1] == "root" || user[len(user)-1] == "0":
			add("User=%s: run as a dedicated account or DynamicUser=yes", user[len(user)-1])
		}
	}
	if ps := unitValues(entries, svc, "ProtectSystem"); len(ps) == 0 || ps[len(ps)-1] != "strict" {
		add("ProtectSystem=strict is not set")
	}
	for _, k := range []string{"NoNewPrivileges", "PrivateTmp"} {
		if !unitBool(entries, svc, k) {
			add("%s=yes is not set", k)
		}
	}
	if len(unitValues(entries, svc, "SetCredential")) > 0 {
		add("SetCredential= puts a secret in the unit file; use LoadCredential= from a root-only file")
	}

	// The command and its environment.
	execs := unitValues(entries, svc, "ExecStart")
	if len(execs) != 1 {
		add("want one ExecStart=, found %d", len(execs))
		return problems
	}
	argv := unitWords(execs[0])
	if len(argv) > 0 {
		argv[0] = strings.TrimLeft(argv[0], "@-:+!")
	}
	if len(argv) < 2 || path.Base(argv[0]) != "tokend" || argv[1] != "serve" {
		add("ExecStart=%s does not run tokend serve", execs[0])
		return problems
	}
	n := &node{where: "systemd/tokend.service", args: argv[2:], env: map[string]string{}}
	for _, v := range unitValues(entries, svc, "Environment") {
		for _, w := range unitWords(v) {
			k, val, ok := strings.Cut(w, "=")
			if !ok {
				add("Environment=%s: %q is not NAME=VALUE", v, w)
				continue
			}
			n.env[k] = val
		}
	}
	envFilePaths := unitValues(entries, svc, "EnvironmentFile")
	if len(envFilePaths) == 0 {
		add("no EnvironmentFile=: per-node settings need a documented file")
	}
	for _, p := range envFilePaths {
		base := filepath.Base(strings.TrimPrefix(p, "-"))
		text, ok := envFiles[base]
		if !ok {
			add("EnvironmentFile=%s has no documented example deploy/systemd/%s", p, base)
			continue
		}
		if !strings.Contains(unit, "deploy/systemd/"+base) {
			add("EnvironmentFile=%s: the unit does not point to its example, deploy/systemd/%s", p, base)
		}
		n.where = "systemd/tokend.service with " + base
		// Settings from the file override Environment=.
		for k, v := range parseEnvFile(text) {
			n.env[k] = v
		}
	}
	problems = append(problems, checkNode(n, fs)...)

	// Secrets are credentials the unit loads.
	loaded := map[string]bool{}
	for _, k := range []string{"LoadCredential", "LoadCredentialEncrypted"} {
		for _, v := range unitValues(entries, svc, k) {
			id, _, _ := strings.Cut(v, ":")
			loaded[id] = true
		}
	}
	for _, flag := range fs.secretFileFlags() {
		v, set := n.setting(fs, flag)
		if !set || v == "" {
			continue
		}
		m := credentialPath.FindStringSubmatch(v)
		switch {
		case m == nil:
			add("--%s %s is not a credential (%%d/NAME with LoadCredential=NAME:...)", flag, v)
		case !loaded[m[1]]:
			add("--%s %s: no LoadCredential=%s:... loads it", flag, v, m[1])
		}
	}

	// The admin surface stays on loopback, as docs/SECURITY.md says.
	if v, set := n.setting(fs, "admin-addr"); set && v != "" {
		if host, _, err := addrPort(v); err == nil && !isLoopback(host) {
			add("--admin-addr %s: the unit binds the admin port to loopback (a management address belongs in the environment file, commented)", v)
		}
	}

	// ProtectSystem=strict leaves only the state and ReadWritePaths
	// writable: the data directory must be one of them.
	dataDir, _ := n.setting(fs, "data-dir")
	writable := unitValues(entries, svc, "ReadWritePaths")
	for _, v := range unitValues(entries, svc, "StateDirectory") {
		for _, d := range strings.Fields(v) {
			writable = append(writable, "/var/lib/"+d)
		}
	}
	ok := false
	for _, w := range writable {
		for _, d := range strings.Fields(w) {
			if _, in := underDir(dataDir, strings.TrimPrefix(d, "-")); in && path.IsAbs(dataDir) {
				ok = true
			}
		}
	}
	if !ok {
		add("the data directory %q is not writable under ProtectSystem=strict (want it under StateDirectory= or ReadWritePaths=)", dataDir)
	}
	return problems
}

func systemdFiles(t *testing.T) (unit string, envFiles map[string]string) {
	t.Helper()
	unit = readRepoFile(t, "systemd/tokend.service")
	envFiles = map[string]string{}
	paths, _ := filepath.Glob("systemd/*.env")
	for _, p := range paths {
		envFiles[filepath.Base(p)] = readRepoFile(t, p)
	}
	return unit, envFiles
}

// TestSystemd checks the unit and its environment file against tokend
// serve, and has systemd-analyze verify the unit where it is installed.
func TestSystemd(t *testing.T) {
	fs := serveFlags(t)
	unit, envFiles := systemdFiles(t)
	noProblems(t, checkSystemd(unit, envFiles, fs))

	t.Run("systemd-analyze verify", func(t *testing.T) {
		verify(t, unit, true)
	})
}

// verify runs systemd-analyze verify on unit, with ExecStart pointing at
// the tokend built from this tree (verify checks that the command exists),
// and fails on any complaint, warnings included.
func verify(t *testing.T, unit string, wantClean bool) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified by systemd")
	}
	bin := tokendBin(t)
	re := regexp.MustCompile(`(?m)^ExecStart=(\S*/)?tokend `)
	if !re.MatchString(unit) {
		t.Fatal("no ExecStart=.../tokend in the unit")
	}
	unit = re.ReplaceAllString(unit, "ExecStart="+bin+" ")
	p := filepath.Join(t.TempDir(), "tokend.service")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
	clean := err == nil && strings.TrimSpace(string(out)) == ""
	if clean != wantClean {
		t.Errorf("systemd-analyze verify: clean %v, want %v: %v\n%s", clean, wantClean, err, out)
	}
}

func TestSystemdBroken(t *testing.T) {
	fs := serveFlags(t)
	unit, envFiles := systemdFiles(t)
	const envFile = "tokend.env"
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"runs as root", "", "DynamicUser=yes\n", "", "runs as root"},
		{"runs as user root", "", "DynamicUser=yes\n", "User=root\n", "User=root"},
		{"protect system full", "", "ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem=strict is not set"},
		{"no NoNewPrivileges", "", "NoNewPrivileges=yes", "NoNewPrivileges=no", "NoNewPrivileges=yes is not set"},
		{"no PrivateTmp", "", "PrivateTmp=yes\n", "", "PrivateTmp=yes is not set"},
		{"no environment file", "", "EnvironmentFile=/etc/tokend/tokend.env\n", "", "no EnvironmentFile="},
		{"undocumented environment file", "", "EnvironmentFile=/etc/tokend/tokend.env", "EnvironmentFile=/etc/tokend/node.env", "has no documented example deploy/systemd/node.env"},
		{"unknown flag", "", "ExecStart=/usr/local/bin/tokend serve", "ExecStart=/usr/local/bin/tokend serve --raft-address 10.0.0.11:8300", "unknown flag --raft-address"},
		{"not serve", "", "ExecStart=/usr/local/bin/tokend serve", "ExecStart=/usr/local/bin/tokend", "does not run tokend serve"},
		{"token on the command line", "", "ExecStart=/usr/local/bin/tokend serve", "ExecStart=/usr/local/bin/tokend serve --admin-token Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg=", "--admin-token (TOKEND_ADMIN_TOKEN) carries the secret itself"},
		{"secret literal", "", "SystemCallArchitectures=native", "SystemCallArchitectures=native\nSetCredential=admin-token:hunter2", "SetCredential= puts a secret"},
		{"key not a credential", "", "TOKEND_CLUSTER_KEY_FILE=%d/cluster-key", "TOKEND_CLUSTER_KEY_FILE=/etc/tokend/credentials/cluster-key", "--cluster-key-file /etc/tokend/credentials/cluster-key is not a credential"},
		{"credential not loaded", "", "LoadCredential=admin-token:/etc/tokend/credentials/admin-token\n", "", "no LoadCredential=admin-token"},
		{"admin on every address", "", "TOKEND_ADMIN_ADDR=127.0.0.1:8400", "TOKEND_ADMIN_ADDR=0.0.0.0:8400", "binds the admin port to loopback"},
		{"data dir read-only", "", "Environment=TOKEND_DATA_DIR=/var/lib/tokend", "Environment=TOKEND_DATA_DIR=/srv/tokend", `"/srv/tokend" is not writable`},
		{"env: unknown variable", envFile, "TOKEND_BOOTSTRAP_EXPECT=3", "TOKEND_BOOTSTRAP=3", "TOKEND_BOOTSTRAP is not read"},
		{"env: inline comment", envFile, "TOKEND_ISSUER=https://auth.example.com", "TOKEND_ISSUER=https://auth.example.com   # the same on every node", "a comment after a value becomes part of the value"},
		{"env: no issuer", envFile, "TOKEND_ISSUER=https://auth.example.com", "#TOKEND_ISSUER=https://auth.example.com", "--issuer is required"},
		{"env: gossip on 0.0.0.0", envFile, "TOKEND_GOSSIP_ADDR=10.0.0.11:8301", "TOKEND_GOSSIP_ADDR=0.0.0.0:8301", `--gossip-addr "0.0.0.0:8301" is advertised`},
		{"env: bad duration", envFile, "TOKEND_LEAVE_ON_TERMINATE=false", "TOKEND_LEAVE_ON_TERMINATE=false\nTOKEND_DEAD_SERVER_GRACE=10", `TOKEND_DEAD_SERVER_GRACE="10"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, files := unit, map[string]string{}
			for k, v := range envFiles {
				files[k] = v
			}
			if tc.file == "" {
				u = mutate(t, unit, tc.old, tc.new)
			} else {
				files[tc.file] = mutate(t, files[tc.file], tc.old, tc.new)
			}
			wantProblem(t, checkSystemd(u, files, fs), tc.want)
		})
	}
	// systemd-analyze itself notices what the checks above do not read.
	t.Run("systemd-analyze verify: misspelt key", func(t *testing.T) {
		verify(t, mutate(t, unit, "ProtectHome=yes", "ProtectHom=yes"), false)
	})
}

func TestUnitWords(t *testing.T) {
	got := unitWords(`A=1 "B=two words" 'C=x y'  D=`)
	want := []string{"A=1", "B=two words", "C=x y", "D="}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("unitWords = %q, want %q", got, want)
	}
	entries, err := parseUnit("[Service]\n# c\nExecStart=/bin/tokend serve \\\n  --node-id x\nUser=a\nUser=\n")
	if err != nil {
		t.Fatal(err)
	}
	if e := unitValues(entries, "Service", "ExecStart"); len(e) != 1 || unitWords(e[0])[3] != "x" {
		t.Fatalf("continuation: %q", e)
	}
	if u := unitValues(entries, "Service", "User"); len(u) != 0 {
		t.Fatalf("an empty assignment resets: %q", u)
	}
	if _, err := parseUnit("Key=value before any section\n"); err == nil {
		t.Fatal("a key outside a section parsed")
	}
}
