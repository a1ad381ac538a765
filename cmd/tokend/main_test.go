package main

import (
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/cluster"
)

func TestFlagsReadEnvironmentAndFlagsWin(t *testing.T) {
	t.Setenv("TOKEND_HTTP_ADDR", "127.0.0.1:9999")
	t.Setenv("TOKEND_ACCESS_TOKEN_TTL", "5m")
	t.Setenv("TOKEND_NODE_ID", "from-env")
	c, err := parseServe([]string{"--node-id", "from-flag"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.httpAddr != "127.0.0.1:9999" || c.accessTTL != 5*time.Minute {
		t.Fatalf("environment not read: %+v", c)
	}
	if c.nodeID != "from-flag" {
		t.Fatalf("flag did not win over environment: %q", c.nodeID)
	}
}

func TestServeConfigErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bootstrap-expect", "3"},                                   // cluster without key
		{"--join", "127.0.0.1:1"},                                     // join without key
		{"--bootstrap-expect", "0"},                                   // nonsense
		{"--tls-cert", "x"},                                           // cert without key
		{"--access-token-ttl", "-1s"},                                 // negative lifetime
		{"--dev", "--bootstrap-expect", "3", "--cluster-key", "AAAA"}, // dev is one node
		{"stray-argument"},
	} {
		if _, err := parseServe(args, io.Discard); err == nil {
			t.Errorf("parseServe(%q) accepted", args)
		}
	}
	t.Setenv("TOKEND_BOOTSTRAP_EXPECT", "not-a-number")
	if _, err := parseServe(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "TOKEND_BOOTSTRAP_EXPECT") {
		t.Errorf("bad environment value not reported by name: %v", err)
	}
}

func TestClusterKeyMustBe32Bytes(t *testing.T) {
	c := &serveConfig{clusterKey: "c2hvcnQ="}
	if _, err := c.key(); err == nil {
		t.Fatal("short key accepted")
	}
	c.clusterKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	if k, err := c.key(); err != nil || len(k) != 32 {
		t.Fatalf("32-byte key refused: %v", err)
	}
}

// TestDevCurlLines runs tokend serve --dev and pastes the curl lines it
// prints into bash: they must work as printed.
func TestDevCurlLines(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required (CI installs it)")
	}
	p := startRaw(t, "dev", []string{"TMPDIR=" + t.TempDir()}, devArgs(t)...)
	var block string
	eventually(t, "dev banner", func() error {
		out := p.out.String()
		start := strings.Index(out, "export TOKEND=")
		end := strings.Index(out, "# Authorization code flow")
		if start < 0 || end < start {
			if !p.running() {
				t.Fatalf("dev node exited:\n%s", out)
			}
			return io.ErrUnexpectedEOF
		}
		block = out[start:end]
		return nil
	})
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pasted lines failed: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{`"token_type":"bearer"`, `"active":true`, `"token_issued_counter":2`, "HTTP/1.1 200 OK", "X-Token-Subject: default/demo"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if last := s[strings.LastIndex(s, "HTTP/1.1"):]; !strings.HasPrefix(last, "HTTP/1.1 401") {
		t.Errorf("validate after revoke should be 401, got:\n%s", last)
	}
}

func TestFlagsAfterPositionalArguments(t *testing.T) {
	fs := newFlagSet("t", io.Discard)
	addr := fs.String("addr", "", "")
	force := fs.Bool("force", false, "")
	if err := parseWithEnv(fs, []string{"get", "ID", "--addr", "http://x", "--force", "--", "-literal"}); err != nil {
		t.Fatal(err)
	}
	if *addr != "http://x" || !*force || strings.Join(fs.Args(), " ") != "get ID -literal" {
		t.Fatalf("addr %q force %v args %q", *addr, *force, fs.Args())
	}
}

// writeSecret writes a secret file with mode perm.
func writeSecret(t *testing.T, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func testKey(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestAdminTokenRules(t *testing.T) {
	long := strings.Repeat("k", minAdminToken)
	if _, err := parseServe([]string{"--admin-token", long[1:]}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "at least 32 bytes") || !strings.Contains(err.Error(), "/dev/urandom") {
		t.Errorf("31-byte token: %v", err)
	}
	if _, err := parseServe([]string{"--admin-token", long}, io.Discard); err != nil {
		t.Errorf("32-byte token refused: %v", err)
	}
	if _, err := parseServe([]string{"--admin-token", long + "\nmore"}, io.Discard); err == nil {
		t.Error("token with a newline accepted")
	}

	f := writeSecret(t, "admin-token", long+"x \n\n", 0o600)
	c, err := parseServe([]string{"--admin-token-file", f}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.adminToken != long+"x" || len(c.looseFiles) != 0 {
		t.Errorf("token %q from file, loose files %v", c.adminToken, c.looseFiles)
	}
	// The environment twin works too.
	t.Setenv("TOKEND_ADMIN_TOKEN_FILE", f)
	if c, err := parseServe(nil, io.Discard); err != nil || c.adminToken != long+"x" {
		t.Errorf("TOKEND_ADMIN_TOKEN_FILE: %q %v", c.adminToken, err)
	}
	if _, err := parseServe([]string{"--admin-token", long}, io.Discard); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("--admin-token with TOKEND_ADMIN_TOKEN_FILE: %v", err)
	}
	t.Setenv("TOKEND_ADMIN_TOKEN_FILE", "")

	for name, content := range map[string]string{"empty": "", "blank": " \n\n", "short": "short-token\n"} {
		if _, err := parseServe([]string{"--admin-token-file", writeSecret(t, name, content, 0o600)}, io.Discard); err == nil {
			t.Errorf("%s token file accepted", name)
		}
	}
	if _, err := parseServe([]string{"--admin-token-file", filepath.Join(t.TempDir(), "missing")}, io.Discard); err == nil {
		t.Error("missing token file accepted")
	}

	// A file others can read is a warning, not an error.
	c, err = parseServe([]string{"--admin-token-file", writeSecret(t, "loose", long, 0o640)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.looseFiles) != 1 || c.looseFiles[0].flag != "--admin-token-file" || c.looseFiles[0].mode != 0o640 {
		t.Errorf("loose files: %+v", c.looseFiles)
	}
}

func TestDevAdminTokenIsLongEnough(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	c := &serveConfig{}
	if err := c.devDefaults(); err != nil {
		t.Fatal(err)
	}
	defer c.devCleanup()
	if len(c.adminToken) < minAdminToken {
		t.Fatalf("dev admin token %q is %d bytes", c.adminToken, len(c.adminToken))
	}
}

func TestClusterKeyFile(t *testing.T) {
	primary, old := testKey(1), testKey(2)
	f := writeSecret(t, "cluster-key", "# rotated 2026-11-20\n"+primary+"\n\n  "+old+"  # previous\n", 0o600)
	c, err := parseServe([]string{"--bootstrap-expect", "3", "--cluster-key-file", f, "--issuer", "https://auth.example.com"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	key, accept, err := c.keys()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, bytes.Repeat([]byte{1}, 32)) || len(accept) != 1 || !bytes.Equal(accept[0], bytes.Repeat([]byte{2}, 32)) {
		t.Fatalf("primary %x, accepted %x", key, accept)
	}

	// A key on argv is still one key.
	c, err = parseServe([]string{"--bootstrap-expect", "3", "--cluster-key", primary, "--issuer", "https://auth.example.com"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if key, accept, err := c.keys(); err != nil || len(key) != 32 || len(accept) != 0 {
		t.Fatalf("--cluster-key: %d-byte key, %d accepted, %v", len(key), len(accept), err)
	}

	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	for name, content := range map[string]string{
		"empty":        "",
		"comments":     "# nothing here\n\n",
		"short key":    primary + "\n" + short + "\n",
		"not base64":   "not-a-key!\n",
		"url encoding": strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))) + "\n",
	} {
		_, err := parseServe([]string{"--cluster-key-file", writeSecret(t, "k", content, 0o600)}, io.Discard)
		if err == nil {
			t.Errorf("%s: key file accepted", name)
		} else if strings.Contains(err.Error(), short) {
			t.Errorf("%s: error quotes the file: %v", name, err)
		}
	}
	_, err = parseServe([]string{"--cluster-key-file", writeSecret(t, "k", primary+"\n"+short+"\n", 0o600)}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line not named: %v", err)
	}
	if _, err := parseServe([]string{"--cluster-key", primary, "--cluster-key-file", f}, io.Discard); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("--cluster-key and --cluster-key-file: %v", err)
	}
	c, err = parseServe([]string{"--cluster-key-file", writeSecret(t, "k", primary, 0o604)}, io.Discard)
	if err != nil || len(c.looseFiles) != 1 {
		t.Errorf("world-readable key file: %v, loose files %+v", err, c.looseFiles)
	}
}

func TestInternalTLSFlags(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem"), filepath.Join(dir, "ca.pem")
	keyFile := writeSecret(t, "cluster-key", testKey(3)+"\n", 0o600)
	all := []string{"--internal-tls-cert", cert, "--internal-tls-key", key, "--internal-tls-ca", ca}
	for _, args := range [][]string{
		{"--internal-tls-cert", cert, "--cluster-key-file", keyFile},
		{"--internal-tls-cert", cert, "--internal-tls-key", key, "--cluster-key-file", keyFile},
		{"--internal-tls-ca", ca, "--cluster-key-file", keyFile},
		all, // no cluster key
	} {
		if _, err := parseServe(args, io.Discard); err == nil {
			t.Errorf("parseServe(%q) accepted", args)
		}
	}
	c, err := parseServe(append([]string{"--cluster-key-file", keyFile}, all...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.internalTLS != (cluster.TLSFiles{CertFile: cert, KeyFile: key, CAFile: ca}) {
		t.Fatalf("internal TLS %+v", c.internalTLS)
	}
}

func TestAdminAddrFlag(t *testing.T) {
	t.Setenv("TOKEND_ADMIN_ADDR", "127.0.0.1:8400")
	c, err := parseServe(nil, io.Discard)
	if err != nil || c.adminAddr != "127.0.0.1:8400" {
		t.Fatalf("TOKEND_ADMIN_ADDR: %q %v", c.adminAddr, err)
	}
	t.Setenv("TOKEND_ADMIN_ADDR", "")
	if c, err := parseServe(nil, io.Discard); err != nil || c.adminAddr != "" {
		t.Fatalf("default --admin-addr %q %v", c.adminAddr, err)
	}
}

// The help of every flag that takes a secret on argv points to its file
// twin.
func TestSecretFlagsWarnAboutArgv(t *testing.T) {
	var help strings.Builder
	if _, err := parseServe([]string{"-h"}, &help); err == nil {
		t.Fatal("-h did not stop parsing")
	}
	usage := map[string]string{}
	for _, block := range strings.Split(help.String(), "\n  -")[1:] {
		name, text, _ := strings.Cut(block, " ")
		usage[name] = text
	}
	for _, f := range []string{"admin-token", "cluster-key"} {
		if !strings.Contains(usage[f], "(ps)") || !strings.Contains(usage[f], "--"+f+"-file") {
			t.Errorf("--%s help does not warn about argv: %q", f, usage[f])
		}
	}
}
