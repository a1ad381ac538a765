package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/tokend/tokend/cluster"
)

// Dev mode: one node on a throwaway data directory, a generated admin
// token, and a demo client and user seeded through the node's own admin
// API, printed with curl lines that work as pasted.

const (
	demoClientName = "Demo App"
	demoRedirect   = "http://127.0.0.1:9999/callback"
	demoUser       = "demo"
	demoPassword   = "s3cr3t"
)

func (c *serveConfig) devDefaults() error {
	if c.dataDir == "" {
		dir, err := os.MkdirTemp("", "tokend-dev-")
		if err != nil {
			return fmt.Errorf("dev data dir: %w", err)
		}
		c.dataDir = dir
		c.devTempDir = dir
	}
	if c.adminToken == "" {
		// "dev-admin-" and 32 characters: over httpapi.MinAdminTokenLen.
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		c.adminToken = "dev-admin-" + base64.RawURLEncoding.EncodeToString(b)
	}
	return nil
}

func (c *serveConfig) devCleanup() {
	if c.devTempDir != "" {
		_ = os.RemoveAll(c.devTempDir)
	}
}

// seedDemo seeds through the admin API at adminBase (base itself unless
// --admin-addr is set) and prints curl lines against base.
func (c *serveConfig) seedDemo(ctx context.Context, node *cluster.Node, base, adminBase string, out io.Writer) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := node.WaitReady(wctx); err != nil {
		return fmt.Errorf("node not ready: %w", err)
	}
	api := &adminClient{base: adminBase, token: c.adminToken, http: &http.Client{Timeout: 10 * time.Second}}

	var existing []struct {
		ClientID string `json:"client_id"`
		Name     string `json:"name"`
	}
	if err := api.do(ctx, http.MethodGet, "/admin/clients", nil, &existing); err != nil {
		return err
	}
	var client struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	path, body := "/admin/clients", any(map[string]any{
		"name":          demoClientName,
		"redirect_uris": []string{demoRedirect},
		"grant_types":   []string{"authorization_code", "implicit", "password", "client_credentials", "refresh_token"},
		"scopes":        []string{"read", "write"},
	})
	for _, e := range existing {
		if e.Name == demoClientName {
			// A kept data dir: the secret cannot be read back, so rotate it.
			path, body = "/admin/clients/"+e.ClientID+"/secret", nil
		}
	}
	if err := api.do(ctx, http.MethodPost, path, body, &client); err != nil {
		return err
	}
	err := api.do(ctx, http.MethodPost, "/admin/users",
		map[string]string{"tenant": "default", "username": demoUser, "password": demoPassword}, nil)
	if err != nil && !isStatus(err, http.StatusConflict) {
		return err
	}
	fmt.Fprintf(out, devBanner, base, c.adminToken, client.ClientID, client.ClientSecret, demoRedirect, demoUser, demoPassword,
		base, client.ClientID, client.ClientSecret, demoUser, demoPassword, demoRedirect, adminBase)
	return nil
}

const devBanner = `
tokend dev node is ready at %[1]s
  admin token:   %[2]s  (admin API, /cluster/status, /debug/pprof/ at %[14]s)
  demo client:   %[3]s  secret %[4]s  redirect %[5]s
  demo user:     %[6]s / %[7]s (tenant "default")

Paste these into a shell:

export TOKEND=%[8]s CLIENT_ID=%[9]s CLIENT_SECRET=%[10]s

# Password grant, Martini style (POST /oauth/token, credentials in the body)
RESP=$(curl -s -X POST "$TOKEND/oauth/token" -H 'Accept: application/json' -H 'Content-Type: application/x-www-form-urlencoded' -d "grant_type=password&username=%[11]s&password=%[12]s&client_id=$CLIENT_ID&client_secret=$CLIENT_SECRET"); echo "$RESP"
ACCESS=$(echo "$RESP" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'); REFRESH=$(echo "$RESP" | sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p')

# Use the token (gateway check) and introspect it
curl -si "$TOKEND/validate" -H "Authorization: Bearer $ACCESS"
curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d "token=$ACCESS" "$TOKEND/introspect"; echo

# Refresh, Toon style (POST /token); the refresh token rotates
RESP=$(curl -s -X POST -H "Content-Type: application/x-www-form-urlencoded" -d "client_id=$CLIENT_ID&client_secret=$CLIENT_SECRET&grant_type=refresh_token&refresh_token=$REFRESH" "$TOKEND/token"); echo "$RESP"
ACCESS=$(echo "$RESP" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')

# Client credentials with HTTP Basic
curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d scope=read "$TOKEND/token"; echo

# Revoke (the access token and its refresh token), then validate again: 401
curl -si -X POST -H "Content-Type: application/x-www-form-urlencoded" -d "token=$ACCESS&client_id=$CLIENT_ID&client_secret=$CLIENT_SECRET" "$TOKEND/revoke"
curl -si "$TOKEND/validate" -H "Authorization: Bearer $ACCESS"

# Authorization code flow: open in a browser, log in as the demo user
echo "$TOKEND/authorize?response_type=code&redirect_uri=%[13]s&client_id=$CLIENT_ID&tenant_id=default&state=xyz"

`

// adminClient calls a node's admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func isStatus(err error, status int) bool {
	se, ok := err.(*statusError)
	return ok && se.status == status
}

func (a *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return &statusError{status: resp.StatusCode, body: string(bytes.TrimSpace(data))}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}
