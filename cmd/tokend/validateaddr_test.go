package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
)

// TestValidateListener runs a node with --validate-addr: the fast
// listener answers /validate with the main port's status and headers (but
// Date), serves /readyz, keeps the OAuth and admin surfaces off, and the
// node still stops cleanly on SIGTERM with gateways connected.
func TestValidateListener(t *testing.T) {
	validateAddr := loopaddr.ForTest(t)
	p := startNode(t, "gw", "--validate-addr", validateAddr, "--admin-token", testAdminToken)
	c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}
	c.waitReady(p)
	fast := "http://" + validateAddr
	id, secret := c.createClient(p)
	tok, code, err := issue(p, id, secret)
	if err != nil || code != http.StatusOK {
		t.Fatalf("issue: %d %v", code, err)
	}

	get := func(base, path string, hdr map[string]string) (int, http.Header, string) {
		t.Helper()
		code, body, h, err := do(http.MethodGet, base+path, "", "", hdr)
		if err != nil {
			t.Fatalf("GET %s%s: %v", base, path, err)
		}
		h.Del("Date")
		return code, h, string(body)
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/validate", "Bearer " + tok, http.StatusOK},
		{"/validate?scope=read", "Bearer " + tok, http.StatusOK},
		{"/validate?scope=write", "Bearer " + tok, http.StatusForbidden},
		{"/validate", "Bearer tkda-unknown", http.StatusUnauthorized},
		{"/validate", "", http.StatusUnauthorized},
		{"/readyz", "", http.StatusOK},
	} {
		hdr := map[string]string{}
		if c.auth != "" {
			hdr["Authorization"] = c.auth
		}
		mc, mh, mb := get(p.url(), c.path, hdr)
		fc, fh, fb := get(fast, c.path, hdr)
		if mc != c.want {
			t.Errorf("main %s: %d, want %d", c.path, mc, c.want)
		}
		if mc != fc || !reflect.DeepEqual(mh, fh) || mb != fb {
			t.Errorf("%s: main %d %v %q, --validate-addr %d %v %q", c.path, mc, mh, mb, fc, fh, fb)
		}
	}
	if _, h, _ := get(fast, "/validate", map[string]string{"Authorization": "Bearer " + tok}); h.Get("X-Token-Client-Id") != id {
		t.Errorf("X-Token-Client-Id %q, want %q", h.Get("X-Token-Client-Id"), id)
	}
	for _, path := range []string{"/token", "/admin/clients", "/metrics", "/.well-known/oauth-authorization-server"} {
		if code, _, body := get(fast, path, adminAuth); code != http.StatusNotFound || !strings.Contains(body, `"error":"not_found"`) {
			t.Errorf("--validate-addr %s: %d %s, want the JSON 404", path, code, body)
		}
	}
	if !strings.Contains(p.out.String(), "validate=http://"+validateAddr) {
		t.Errorf("start-up log does not name the validate address")
	}

	p.terminate(t)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// With --tls-cert the fast listener serves HTTPS with the same
// certificate, and plain HTTP is refused there.
func TestValidateListenerTLS(t *testing.T) {
	cert, key, pool := selfSignedCert(t)
	validateAddr := loopaddr.ForTest(t)
	startNode(t, "gwtls", "--validate-addr", validateAddr, "--tls-cert", cert, "--tls-key", key)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}}
	eventually(t, "fast listener ready over https", func() error {
		resp, err := hc.Get("https://" + validateAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	resp, err := hc.Get("https://" + validateAddr + "/validate")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="tokend"` {
		t.Errorf("https /validate without a token: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, err := httpc.Get("http://" + validateAddr + "/validate"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP on the TLS fast listener: %d", resp.StatusCode)
		}
	}
}
