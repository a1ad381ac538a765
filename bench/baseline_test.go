package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every reference server answers as its kind says: the validating ones
// accept the token they were given and refuse others with the Bearer
// challenge, the fixed ones answer the 163-byte body to anything.
func TestReferenceServers(t *testing.T) {
	const tok = "tkda-reference-test"
	for _, kind := range referenceKinds {
		t.Run(kind, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ref, err := startReference(ln, kind, syntheticShape(), []string{tok})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = ref.shutdown(ctx)
			})
			get := func(token string) (*http.Response, []byte) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, ref.URL+"/validate", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp, body
			}
			resp, body := get(tok)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("valid token: %d", resp.StatusCode)
			}
			if strings.HasSuffix(kind, "fixed") {
				if len(body) != 163 || !bytes.Equal(body, fixedBody) {
					t.Errorf("fixed body: %d bytes %q", len(body), body)
				}
				return
			}
			if resp.Header.Get("X-Token-Scope") != "read" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("headers: %v", resp.Header)
			}
			if resp, _ := get("tkda-unknown"); resp.StatusCode != http.StatusUnauthorized ||
				resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
				t.Errorf("unknown token: %d %v", resp.StatusCode, resp.Header)
			}
		})
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if _, err := startReference(ln, "nginx", syntheticShape(), nil); err == nil {
		t.Error("an unknown kind was accepted")
	}
}

// baseline-server listens on loopback only and rejects unknown kinds.
func TestBaselineServerMainRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"--addr", "0.0.0.0:0"},
		{"--addr", "example.com:80"},
		{"--kind", "nginx"},
	} {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a server that did start stops at once
		if code := BaselineServerMain(ctx, args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0, want a refusal (stdout %q)", args, out.String())
		}
	}
}
