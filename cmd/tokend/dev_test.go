package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
	"github.com/tokend/tokend/internal/syncbuf"
)

// Dev mode never touches data a real node may use, binds loopback only,
// is switched on by --dev alone, and works with --tls-cert.

// startRaw starts tokend with exactly args (no --data-dir added, unlike
// proc.start) and env on top of this process's environment less its
// TOKEND_* variables. The process is killed when the test ends.
func startRaw(t *testing.T, id string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{id: id, out: &syncbuf.Buffer{}}
	p.cmd = exec.Command(tokendBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEND_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("=== %s output ===\n%s", id, tail(p.out, 40))
		}
	})
	return p
}

// wantStartError waits for p to exit on its own with a failure whose
// output contains every one of wants.
func wantStartError(t *testing.T, p *proc, wants ...string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(deadline):
		t.Fatalf("%s is still running; it should have refused to start", p.id)
	}
	if p.cmd.ProcessState.Success() {
		t.Fatalf("%s exited 0; it should have refused to start:\n%s", p.id, p.out.String())
	}
	for _, w := range wants {
		if !strings.Contains(p.out.String(), w) {
			t.Errorf("%s's error does not mention %q:\n%s", p.id, w, p.out.String())
		}
	}
}

// devArgs are the arguments of a dev node on free loopback ports.
func devArgs(t *testing.T, extra ...string) []string {
	return append([]string{"serve", "--dev", "--http-addr", loopaddr.ForTest(t), "--raft-addr", loopaddr.ForTest(t), "--gossip-addr", loopaddr.ForTest(t)}, extra...)
}

var bannerRe = regexp.MustCompile(`export TOKEND=(\S+) CLIENT_ID=(\S+) CLIENT_SECRET=(\S+)`)

// waitBanner waits for a dev node's banner and returns its base URL and
// the demo client.
func waitBanner(t *testing.T, p *proc) (base, id, secret string) {
	t.Helper()
	eventually(t, p.id+" banner", func() error {
		m := bannerRe.FindStringSubmatch(p.out.String())
		if m == nil {
			if !p.running() {
				t.Fatalf("%s exited:\n%s", p.id, p.out.String())
			}
			return fmt.Errorf("no banner yet")
		}
		base, id, secret = m[1], m[2], m[3]
		return nil
	})
	return base, id, secret
}

func TestDevRefusesDataDir(t *testing.T) {
	for _, env := range [][]string{nil, {"TOKEND_DATA_DIR=" + t.TempDir()}} {
		args := devArgs(t)
		if env == nil {
			args = append(args, "--data-dir", t.TempDir())
		}
		p := startRaw(t, "dev", env, args...)
		wantStartError(t, p, "--dev always runs on a fresh temporary data directory", "--data-dir")
	}
}

// TestDevDataRefusedByRealNode: the directory a dev node made is marked,
// and a node started without --dev on it refuses to start, so the demo
// user's known password never works on a real node.
func TestDevDataRefusedByRealNode(t *testing.T) {
	tmp := t.TempDir()
	dev := startRaw(t, "dev", []string{"TMPDIR=" + tmp}, devArgs(t)...)
	waitBanner(t, dev)
	dirs, _ := filepath.Glob(filepath.Join(tmp, "tokend-dev-*"))
	if len(dirs) != 1 {
		t.Fatalf("dev data dirs in TMPDIR: %v", dirs)
	}
	marker, err := os.ReadFile(filepath.Join(dirs[0], devMarker))
	if err != nil || !strings.Contains(string(marker), "tokend serve --dev") {
		t.Fatalf("dev data dir has no marker: %q %v", marker, err)
	}
	// A dev node that dies without cleaning up leaves its directory.
	dev.kill(t)
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Fatal(err)
	}

	real := startRaw(t, "real", nil, "serve", "--data-dir", dirs[0], "--admin-token", testAdminToken,
		"--http-addr", loopaddr.ForTest(t), "--raft-addr", loopaddr.ForTest(t), "--gossip-addr", loopaddr.ForTest(t))
	wantStartError(t, real, dirs[0], devMarker, "--dev", "fresh --data-dir")
}

func TestDevLoopbackOnly(t *testing.T) {
	for _, args := range [][]string{
		{"--http-addr", "127.0.0.1:8080"},
		{"--http-addr", "[::1]:8080"},
		{"--http-addr", "localhost:8080", "--admin-addr", "127.0.0.2:8400"},
	} {
		if _, err := parseServe(append([]string{"--dev"}, args...), io.Discard); err != nil {
			t.Errorf("--dev %q refused: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"--http-addr", "0.0.0.0:8080"},
		{"--http-addr", ":8080"},
		{"--http-addr", "[::]:8080"},
		{"--http-addr", "192.0.2.1:8080"},
		{"--http-addr", "example.com:8080"},
		{"--admin-addr", "0.0.0.0:8400"},
		{"--cluster-key", testKey(1), "--gossip-addr", "0.0.0.0:8301"},
	} {
		_, err := parseServe(append([]string{"--dev"}, args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), args[len(args)-1]) {
			t.Errorf("--dev %q: %v, want a refusal naming the address", args, err)
		}
	}
	// Without --dev any address is fine.
	if _, err := parseServe([]string{"--http-addr", "0.0.0.0:8080"}, io.Discard); err != nil {
		t.Errorf("non-dev 0.0.0.0: %v", err)
	}
	// The real binary refuses before binding anything.
	p := startRaw(t, "dev", nil, "serve", "--dev", "--http-addr", "0.0.0.0:0")
	wantStartError(t, p, "--http-addr 0.0.0.0:0 is not a loopback address")
}

func TestDevEnvironment(t *testing.T) {
	t.Setenv("TOKEND_DEV", "1")
	if _, err := parseServe(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "TOKEND_DEV") || !strings.Contains(err.Error(), "--dev") {
		t.Errorf("TOKEND_DEV=1 without --dev: %v", err)
	}
	if c, err := parseServe([]string{"--dev"}, io.Discard); err != nil || !c.dev {
		t.Errorf("TOKEND_DEV=1 with --dev: %v", err)
	}
	t.Setenv("TOKEND_DEV", "false")
	if c, err := parseServe(nil, io.Discard); err != nil || c.dev {
		t.Errorf("TOKEND_DEV=false: dev %v, %v", c != nil && c.dev, err)
	}
	t.Setenv("TOKEND_DEV", "")

	// A real node given TOKEND_DEV in its environment does not become a
	// dev node: it refuses to start.
	p := startRaw(t, "env", []string{"TOKEND_DEV=true"}, "serve", "--data-dir", t.TempDir(),
		"--http-addr", loopaddr.ForTest(t), "--raft-addr", loopaddr.ForTest(t), "--gossip-addr", loopaddr.ForTest(t))
	wantStartError(t, p, "TOKEND_DEV", "only by --dev on the command line")
	if strings.Contains(p.out.String(), "demo client") {
		t.Error("a node with TOKEND_DEV in its environment seeded demo data")
	}
}

// selfSignedCert writes a self-signed certificate for localhost only (no
// IP address): the dev node's self-connection to 127.0.0.1 must trust it
// anyway, because it is its own.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestDevTLS: with --tls-cert a dev node seeds itself over HTTPS and its
// demo client and user work over HTTPS.
func TestDevTLS(t *testing.T) {
	cert, key, pool := selfSignedCert(t)
	p := startRaw(t, "devtls", []string{"TMPDIR=" + t.TempDir()}, devArgs(t, "--tls-cert", cert, "--tls-key", key)...)
	base, id, secret := waitBanner(t, p)
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("dev base URL %q", base)
	}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}}
	form := url.Values{"grant_type": {"password"}, "username": {demoUser}, "password": {demoPassword}, "client_id": {id}, "client_secret": {secret}}
	resp, err := hc.PostForm(base+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("password grant over https: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/validate", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Token-Subject") != "default/"+demoUser {
		t.Fatalf("validate over https: %d %v", resp.StatusCode, resp.Header)
	}
	if strings.Contains(p.out.String(), "seeding demo data failed") {
		t.Fatalf("seeding failed:\n%s", p.out.String())
	}
	// A dev node never sends HSTS, even with an https issuer.
	if h := resp.Header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("dev node sent Strict-Transport-Security %q", h)
	}
}
