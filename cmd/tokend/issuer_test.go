package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/loopaddr"
)

// One issuer per cluster: --issuer is required to start a cluster node,
// and every node announces it.

func TestIssuerFlag(t *testing.T) {
	key := testKey(4)
	for _, args := range [][]string{
		{"--bootstrap-expect", "3", "--cluster-key", key},
		{"--join", "127.0.0.1:8311", "--cluster-key", key},
	} {
		_, err := parseServe(args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--issuer is required") {
			t.Errorf("cluster node %q without --issuer: %v", args, err)
		}
		if _, err := parseServe(append(args, "--issuer", "https://auth.example.com"), io.Discard); err != nil {
			t.Errorf("cluster node %q with --issuer: %v", args, err)
		}
	}
	// A single node may keep the default.
	if c, err := parseServe(nil, io.Discard); err != nil || c.issuer != "" {
		t.Errorf("single node without --issuer: %q %v", c.issuer, err)
	}
	for _, iss := range []string{"https://auth.example.com", "http://127.0.0.1:8081", "https://auth.example.com:8443/tenant"} {
		if _, err := parseServe([]string{"--issuer", iss}, io.Discard); err != nil {
			t.Errorf("--issuer %s refused: %v", iss, err)
		}
	}
	for _, iss := range []string{"auth.example.com", "ftp://auth.example.com", "https://auth.example.com/",
		"https://auth.example.com?x=1", "https://auth.example.com#f", "https://u@auth.example.com", "HTTPS://auth.example.com", "https://"} {
		if _, err := parseServe([]string{"--issuer", iss}, io.Discard); err == nil || !strings.Contains(err.Error(), "--issuer") {
			t.Errorf("--issuer %q: %v, want a refusal", iss, err)
		}
	}

	// The real binary: a cluster node without --issuer does not start.
	p := startRaw(t, "node1", nil, "serve", "--data-dir", t.TempDir(), "--bootstrap-expect", "3", "--cluster-key", key,
		"--http-addr", loopaddr.ForTest(t), "--raft-addr", loopaddr.ForTest(t), "--gossip-addr", loopaddr.ForTest(t))
	wantStartError(t, p, "--issuer is required for a cluster")
}

// TestClusterOneIssuer: the three nodes of a cluster announce the same
// issuer in metadata, introspection and authorization responses.
func TestClusterOneIssuer(t *testing.T) {
	c := newTestCluster(t, 3)
	if c.issuer == "" {
		t.Fatal("the test cluster has no issuer")
	}
	const cb = "http://127.0.0.1:9999/callback"
	var client struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	eventually(t, "create client", func() error {
		code, body, _, err := do(http.MethodPost, c.procs[0].url()+"/admin/clients", "application/json",
			`{"name":"issuer test","redirect_uris":["`+cb+`"],"grant_types":["authorization_code","client_credentials"]}`, adminAuth)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return json.Unmarshal(body, &client)
	})
	var token string
	eventually(t, "issue", func() (err error) {
		token, _, err = issue(c.procs[1], client.ClientID, client.ClientSecret)
		return err
	})

	for _, p := range c.procs {
		eventually(t, p.id+" announces the cluster's issuer", func() error {
			// RFC 8414 metadata.
			code, body, _, err := do(http.MethodGet, p.url()+"/.well-known/oauth-authorization-server", "", "", nil)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("metadata: %d %v", code, err)
			}
			var md map[string]any
			if err := json.Unmarshal(body, &md); err != nil {
				return err
			}
			if md["issuer"] != c.issuer || md["token_endpoint"] != c.issuer+"/token" {
				return fmt.Errorf("metadata issuer %v, token_endpoint %v; want %s", md["issuer"], md["token_endpoint"], c.issuer)
			}
			// Introspection.
			form := url.Values{"token": {token}, "client_id": {client.ClientID}, "client_secret": {client.ClientSecret}}
			code, body, _, err = do(http.MethodPost, p.url()+"/introspect", "application/x-www-form-urlencoded", form.Encode(), nil)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("introspect: %d %s %v", code, body, err)
			}
			var in map[string]any
			if err := json.Unmarshal(body, &in); err != nil {
				return err
			}
			if in["active"] != true || in["iss"] != c.issuer {
				return fmt.Errorf("introspection %s, want active with iss %s", body, c.issuer)
			}
			// An authorization response (RFC 9207 iss), here an error one.
			q := url.Values{"response_type": {"bogus"}, "client_id": {client.ClientID}, "redirect_uri": {cb}, "state": {"s"}}
			req, _ := http.NewRequest(http.MethodGet, p.url()+"/authorize?"+q.Encode(), nil)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode != http.StatusFound {
				return fmt.Errorf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := loc.Query().Get("iss"); got != c.issuer || loc.Query().Get("error") != "unsupported_response_type" {
				return fmt.Errorf("authorization response %s, want iss %s", loc, c.issuer)
			}
			return nil
		})
	}
}

// TestCookieSecureAndHSTS: --cookie-secure marks the session cookie
// Secure on plain HTTP, and Strict-Transport-Security is sent exactly when
// the issuer is https.
func TestCookieSecureAndHSTS(t *testing.T) {
	start := func(id string, args ...string) *proc {
		p := &proc{id: id, dir: t.TempDir(), httpAddr: loopaddr.ForTest(t), raftAddr: loopaddr.ForTest(t), gossipAddr: loopaddr.ForTest(t),
			args: append([]string{"--admin-token", testAdminToken}, args...)}
		p.start(t)
		t.Cleanup(func() {
			p.kill(t)
			if t.Failed() {
				t.Logf("=== %s output ===\n%s", id, tail(p.out, 40))
			}
		})
		return p
	}
	// Behind a TLS-terminating proxy: plain HTTP here, https to clients.
	proxied := start("proxied", "--cookie-secure", "--issuer", "https://auth.example.test")
	plain := start("plain")
	for _, tc := range []struct {
		p            *proc
		secure, hsts bool
	}{{proxied, true, true}, {plain, false, false}} {
		c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{tc.p}}
		c.waitReady(tc.p)
		var client struct {
			ClientID string `json:"client_id"`
		}
		code, body, _, err := do(http.MethodPost, tc.p.url()+"/admin/clients", "application/json",
			`{"name":"cookie test","redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code"]}`, adminAuth)
		if err != nil || code != http.StatusCreated || json.Unmarshal(body, &client) != nil {
			t.Fatalf("%s: create client: %d %s %v", tc.p.id, code, body, err)
		}
		q := url.Values{"response_type": {"code"}, "client_id": {client.ClientID}, "redirect_uri": {"https://app.example/cb"}}
		code, body, hdr, err := do(http.MethodGet, tc.p.url()+"/authorize?"+q.Encode(), "", "", nil)
		if err != nil || code != http.StatusOK || !strings.Contains(string(body), "password") {
			t.Fatalf("%s: login page: %d %v", tc.p.id, code, err)
		}
		cookie := hdr.Get("Set-Cookie")
		if cookie == "" || strings.Contains(cookie, "; Secure") != tc.secure {
			t.Errorf("%s: login page Set-Cookie %q, want Secure=%v", tc.p.id, cookie, tc.secure)
		}
		for _, path := range []string{"/authorize?" + q.Encode(), "/healthz", "/.well-known/oauth-authorization-server", "/no-such-path"} {
			_, _, hdr, err := do(http.MethodGet, tc.p.url()+path, "", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			got := hdr.Get("Strict-Transport-Security")
			if tc.hsts && got != "max-age=31536000" || !tc.hsts && got != "" {
				t.Errorf("%s %s: Strict-Transport-Security %q, want it=%v", tc.p.id, path, got, tc.hsts)
			}
		}
	}
}
