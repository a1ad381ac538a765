package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/loopaddr"
)

// TestAdminCLI drives every operator subcommand against a real node.
func TestAdminCLI(t *testing.T) {
	p := &proc{id: "cli", dir: t.TempDir(), httpAddr: loopaddr.ForTest(t), raftAddr: loopaddr.ForTest(t), gossipAddr: loopaddr.ForTest(t),
		args: []string{"--admin-token", testAdminToken}}
	p.start(t)
	t.Cleanup(func() { p.terminate(t) })
	c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}
	c.waitReady(p)

	tokend := func(args ...string) map[string]any {
		t.Helper()
		var out strings.Builder
		args = append(args, "--addr", p.url(), "--admin-token", testAdminToken)
		if err := run(withTimeout(t), args, &out, &out); err != nil {
			t.Fatalf("tokend %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		var v map[string]any
		if strings.HasPrefix(strings.TrimSpace(out.String()), "{") {
			if err := json.Unmarshal([]byte(out.String()), &v); err != nil {
				t.Fatalf("tokend %s: not JSON: %s", args[0], out.String())
			}
		}
		return v
	}
	created := tokend("client", "create", "--name", "CLI app", "--redirect-uri", "https://app.example/cb",
		"--grant", "client_credentials", "--grant", "password", "--grant", "refresh_token", "--scope", "read")
	id, _ := created["client_id"].(string)
	secret, _ := created["client_secret"].(string)
	if id == "" || !strings.HasPrefix(secret, "tkds-") {
		t.Fatalf("client create: %v", created)
	}
	if got := tokend("client", "get", id); got["name"] != "CLI app" || got["client_secret"] != nil {
		t.Fatalf("client get: %v", got)
	}
	if got := tokend("client", "update", id, "--name", "Renamed", "--redirect-uri", "https://app.example/new",
		"--grant", "client_credentials", "--grant", "password", "--grant", "refresh_token", "--scope", "read"); got["name"] != "Renamed" {
		t.Fatalf("client update: %v", got)
	}
	tokend("user", "create", "--tenant", "eneco", "--username", "alice", "--password", "first")
	tokend("user", "set-password", "eneco/alice", "--password", "second")
	// OpenID Connect claims: update sends only the flags it is given.
	if got := tokend("user", "update", "eneco/alice", "--name", "Alice Liddell", "--email", "alice@example.com", "--email-verified"); got["name"] != "Alice Liddell" ||
		got["email"] != "alice@example.com" || got["email_verified"] != true {
		t.Fatalf("user update: %v", got)
	}
	if got := tokend("user", "update", "eneco/alice", "--preferred-username", "al"); got["name"] != "Alice Liddell" || got["preferred_username"] != "al" || got["email_verified"] != true {
		t.Fatalf("user update --preferred-username: %v", got)
	}
	var forget strings.Builder
	err := run(withTimeout(t), []string{"user", "forget-consent", "eneco/alice", "--client", id, "--addr", p.url(), "--admin-token", testAdminToken}, &forget, &forget)
	if err == nil || !strings.Contains(err.Error()+forget.String(), "no remembered consent") {
		t.Fatalf("user forget-consent without a consent: %v %s", err, forget.String())
	}
	if got := tokend("client", "update", id, "--name", "Renamed", "--redirect-uri", "https://app.example/new", "--post-logout-redirect-uri", "https://app.example/bye",
		"--grant", "client_credentials", "--grant", "password", "--grant", "refresh_token", "--scope", "read"); got["post_logout_redirect_uris"] == nil ||
		got["post_logout_redirect_uris"].([]any)[0] != "https://app.example/bye" {
		t.Fatalf("client update --post-logout-redirect-uri: %v", got)
	}

	password := func(pw string) int {
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {pw}, "tenant_id": {"eneco"},
			"client_id": {id}, "client_secret": {secret}}
		code, _, _, err := do(http.MethodPost, p.url()+"/oauth/token", "application/x-www-form-urlencoded", form.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	if password("first") != http.StatusBadRequest || password("second") != http.StatusOK {
		t.Fatal("set-password did not replace the password")
	}
	userTok, _, err := issue(p, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := tokend("revoke", "--client", id); got["revoked_grants"] == float64(0) {
		t.Fatalf("revoke --client revoked nothing: %v", got)
	}
	if code, _ := validate(p, userTok); code != http.StatusUnauthorized {
		t.Fatalf("token valid after revoke --client: %d", code)
	}
	if password("second") != http.StatusOK {
		t.Fatal("password grant after revoke")
	}
	tokend("revoke", "--user", "eneco/alice")
	rotated := tokend("client", "rotate-secret", id)
	if s, _ := rotated["client_secret"].(string); s == "" || s == secret {
		t.Fatalf("rotate-secret: %v", rotated)
	}
	if _, code, _ := issue(p, id, secret); code != http.StatusUnauthorized {
		t.Fatalf("old secret after rotation: %d", code)
	}
	if st := tokend("cluster", "status"); st["state"] != "Leader" || st["node_id"] != "cli" {
		t.Fatalf("cluster status: %v", st)
	}
	// /cluster/status needs the token: the CLI says so before asking, the
	// node refuses without it, and the token may come from a file.
	t.Setenv("TOKEND_ADMIN_TOKEN", "")
	t.Setenv("TOKEND_ADMIN_TOKEN_FILE", "")
	var noTok strings.Builder
	if err := run(withTimeout(t), []string{"cluster", "status", "--addr", p.url()}, &noTok, &noTok); err == nil || !strings.Contains(err.Error(), "--admin-token") {
		t.Fatalf("cluster status without a token: %v", err)
	}
	if code, body, _, err := do(http.MethodGet, p.url()+"/cluster/status", "", "", nil); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("GET /cluster/status without a token: %d %s %v", code, body, err)
	}
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var viaFile strings.Builder
	if err := run(withTimeout(t), []string{"cluster", "status", "--addr", p.url(), "--admin-token-file", tokenFile}, &viaFile, &viaFile); err != nil ||
		!strings.Contains(viaFile.String(), `"node_id": "cli"`) {
		t.Fatalf("cluster status --admin-token-file: %v\n%s", err, viaFile.String())
	}
	tokend("user", "delete", "eneco/alice")
	tokend("client", "delete", id)
	var out strings.Builder
	if err := run(withTimeout(t), []string{"client", "get", id, "--addr", p.url(), "--admin-token", testAdminToken}, &out, &out); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("client get after delete: %v %s", err, out.String())
	}
	if err := run(withTimeout(t), []string{"revoke", "--addr", p.url(), "--admin-token", testAdminToken}, &out, &out); err == nil {
		t.Fatal("revoke without --client or --user accepted")
	}
}
