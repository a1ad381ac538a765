package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/loopaddr"
)

// TestAdminListener runs a node with --admin-addr and --admin-token-file:
// the admin surface answers on its own port only, behind the token
// (except /metrics), and the token never appears on the command line.
func TestAdminListener(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminAddr := loopaddr.ForTest(t)
	p := startNode(t, "adm", "--admin-addr", adminAddr, "--admin-token-file", tokenFile)
	c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}
	c.waitReady(p)
	admin := "http://" + adminAddr

	get := func(base, path string, hdr map[string]string) (int, string) {
		t.Helper()
		code, body, _, err := do(http.MethodGet, base+path, "", "", hdr)
		if err != nil {
			t.Fatalf("GET %s%s: %v", base, path, err)
		}
		return code, string(body)
	}
	for _, path := range []string{"/admin/clients", "/metrics", "/cluster/status", "/debug/pprof/", "/debug/pprof/heap"} {
		if code, body := get(p.url(), path, adminAuth); code != http.StatusNotFound || !strings.Contains(body, `"error":"not_found"`) {
			t.Errorf("public %s: %d %s, want 404 not_found", path, code, body)
		}
		if code, body := get(admin, path, adminAuth); code != http.StatusOK {
			t.Errorf("admin %s: %d %s, want 200", path, code, body)
		}
	}
	for path, want := range map[string]int{
		"/admin/clients":       http.StatusUnauthorized,
		"/cluster/status":      http.StatusUnauthorized,
		"/debug/pprof/":        http.StatusUnauthorized,
		"/debug/pprof/cmdline": http.StatusUnauthorized,
		"/metrics":             http.StatusOK, // scrapers need no token
	} {
		if code, body := get(admin, path, nil); code != want {
			t.Errorf("admin %s without token: %d %s, want %d", path, code, body, want)
		}
	}
	if code, _ := get(admin, "/healthz", nil); code != http.StatusNotFound {
		t.Errorf("admin port serves /healthz: %d", code)
	}
	if code, body := get(p.url(), "/.well-known/oauth-authorization-server", nil); code != http.StatusOK {
		t.Errorf("public metadata: %d %s", code, body)
	}
	// The token came from a file, so the command line does not hold it.
	if code, body := get(admin, "/debug/pprof/cmdline", adminAuth); code != http.StatusOK || !strings.Contains(body, "--admin-token-file") || strings.Contains(body, testAdminToken) {
		t.Errorf("cmdline: %d %q", code, body)
	}
	// A CPU profile streams for its duration within the admin listener's
	// write timeout.
	if code, body := get(admin, "/debug/pprof/profile?seconds=1", adminAuth); code != http.StatusOK || len(body) == 0 {
		t.Errorf("profile: %d, %d bytes: %.200s", code, len(body), body)
	}
	// Admin writes work on the admin port, and the CLI talks to it.
	code, body, _, err := do(http.MethodPost, admin+"/admin/clients", "application/json",
		`{"name":"cluster test","grant_types":["client_credentials"],"scopes":["read"]}`, adminAuth)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create client on the admin port: %d %s %v", code, body, err)
	}
	var out strings.Builder
	if err := run(withTimeout(t), []string{"client", "list", "--addr", admin, "--admin-token-file", tokenFile}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "cluster test") {
		t.Errorf("tokend client list on the admin port: %v\n%s", err, out.String())
	}
	if !strings.Contains(p.out.String(), "admin="+admin) {
		t.Errorf("start-up log does not name the admin address")
	}
	if strings.Contains(p.out.String(), "accessible to group or others") {
		t.Errorf("0600 token file reported as loose")
	}

	p.terminate(t)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}
