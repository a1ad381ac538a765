package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/cluster"
)

// Dev mode: one node on a throwaway data directory, a generated admin
// token, and a demo client and user seeded through the node's own admin
// API, printed with curl lines that work as pasted.
//
// Its data is never production data: the demo user's password is in this
// file and the demo client may use every grant. So dev mode only ever runs
// on a fresh temporary directory, which it marks (devMarker), and a
// non-dev node refuses a directory with that mark; it binds loopback
// addresses only; and it is switched on only by --dev on the command
// line, never by an exported TOKEND_DEV.

const (
	demoClientName = "Demo App"
	demoRedirect   = "http://127.0.0.1:9999/callback"
	demoUser       = "demo"
	demoPassword   = "s3cr3t"
)

// devMarker is the file dev mode writes into its data directory.
const devMarker = "DEV-MODE-DATA"

const devMarkerText = `This directory was created by "tokend serve --dev". It holds the demo
user ` + demoUser + ` / ` + demoPassword + ` and a demo client allowed every grant, so a
tokend node started without --dev refuses to use it. Do not copy it into
production; start production nodes on a fresh --data-dir.
`

// checkDevEnv refuses an exported TOKEND_DEV that asks for dev mode
// without --dev on the command line (parseWithEnv does not read it).
// TOKEND_DEV=false asks for nothing and is let through.
func (c *serveConfig) checkDevEnv() error {
	v, ok := os.LookupEnv("TOKEND_DEV")
	if !ok || v == "" || c.dev {
		return nil
	}
	if on, err := strconv.ParseBool(v); err == nil && !on {
		return nil
	}
	return fmt.Errorf("TOKEND_DEV=%s is set in the environment, but dev mode (a throwaway node with the well-known demo user %s/%s) "+
		"is switched on only by --dev on the command line: unset TOKEND_DEV, or run tokend serve --dev", v, demoUser, demoPassword)
}

// checkDev refuses a dev node a data directory of its own choosing and
// any address that is not loopback.
func (c *serveConfig) checkDev() error {
	if !c.dev {
		return nil
	}
	if c.dataDir != "" {
		return errors.New("--dev always runs on a fresh temporary data directory, removed when it stops, " +
			"so its demo user and all-grants demo client can never end up in data a real node uses: " +
			"drop --data-dir (or TOKEND_DATA_DIR), or run without --dev to keep data")
	}
	addrs := []struct{ flag, addr string }{{"http-addr", c.httpAddr}, {"admin-addr", c.adminAddr}}
	if c.clusterKey != "" || c.clusterKeyFile != "" { // only then are these opened
		addrs = append(addrs, struct{ flag, addr string }{"raft-addr", c.raftAddr}, struct{ flag, addr string }{"gossip-addr", c.gossipAddr})
	}
	for _, a := range addrs {
		if a.addr != "" && !isLoopbackAddr(a.addr) {
			return fmt.Errorf("--dev listens on loopback only (its admin token is printed and its demo password is public): "+
				"--%s %s is not a loopback address; use 127.0.0.1, [::1] or localhost", a.flag, a.addr)
		}
	}
	return nil
}

// isLoopbackAddr reports whether host:port names a loopback host: a
// loopback IP or localhost. An empty host (all interfaces) is not.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// refuseDevData refuses a data directory that dev mode made.
func refuseDevData(dir string) error {
	_, err := os.Stat(filepath.Join(dir, devMarker))
	switch {
	case err == nil:
		return fmt.Errorf("--data-dir %s was made by tokend serve --dev (it holds %s): its data includes the well-known demo user %s/%s "+
			"and a demo client allowed every grant, so only a dev node may use it; start this node on a fresh --data-dir",
			dir, devMarker, demoUser, demoPassword)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("--data-dir %s: %w", dir, err)
	}
}

func (c *serveConfig) devDefaults() error {
	if c.dataDir != "" { // checkDev refuses this; never seed a kept directory
		return errors.New("--dev does not take --data-dir")
	}
	dir, err := os.MkdirTemp("", "tokend-dev-")
	if err != nil {
		return fmt.Errorf("dev data dir: %w", err)
	}
	c.dataDir = dir
	c.devTempDir = dir
	if err := os.WriteFile(filepath.Join(dir, devMarker), []byte(devMarkerText), 0o600); err != nil {
		return fmt.Errorf("dev data dir: %w", err)
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
	hc, err := c.selfClient()
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	api := &adminClient{base: adminBase, token: c.adminToken, http: hc}

	// The data directory is always fresh (checkDev): create, never reuse.
	var client struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	body := map[string]any{
		"name":          demoClientName,
		"redirect_uris": []string{demoRedirect},
		"grant_types":   []string{"authorization_code", "implicit", "password", "client_credentials", "refresh_token"},
		"scopes":        []string{"read", "write"},
	}
	if err := api.do(ctx, http.MethodPost, "/admin/clients", body, &client); err != nil {
		return err
	}
	err = api.do(ctx, http.MethodPost, "/admin/users",
		map[string]string{"tenant": "default", "username": demoUser, "password": demoPassword}, nil)
	if err != nil {
		return err
	}
	if c.tlsCert != "" {
		cert, _ := filepath.Abs(c.tlsCert)
		fmt.Fprintf(out, "\n# HTTPS: if --tls-cert is self-signed, have curl trust it: export CURL_CA_BUNDLE=%s\n", cert)
	}
	fmt.Fprintf(out, devBanner, base, c.adminToken, client.ClientID, client.ClientSecret, demoRedirect, demoUser, demoPassword,
		base, client.ClientID, client.ClientSecret, demoUser, demoPassword, demoRedirect, adminBase)
	return nil
}

// selfClient is the HTTP client that seeds this node through its own
// admin API. With --tls-cert it trusts exactly that certificate, whoever
// signed it and whatever names it has: it only ever dials this process's
// own listener on loopback (checkDev), which serves that certificate, and
// a dev certificate is often self-signed or made out to another name.
func (c *serveConfig) selfClient() (*http.Client, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	if c.tlsCert == "" {
		return hc, nil
	}
	pair, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	own := pair.Certificate[0]
	hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12,
		// No chain or name verification; VerifyConnection, which runs
		// regardless, pins the one certificate instead.
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, own) {
				return errors.New("the node's own listener did not present the --tls-cert certificate")
			}
			return nil
		},
	}}
	return hc, nil
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
