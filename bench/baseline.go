package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// validateShape is what a successful /validate answer looks like on the
// wire: the headers (minus those net/http sets itself) and the body bytes.
type validateShape struct {
	Header http.Header
	Body   []byte
}

// syntheticShape mimics tokend's /validate when no node is available to
// probe (baseline alone): the X-Token-* headers of the contract with
// realistic value sizes and an empty body.
func syntheticShape() validateShape {
	return validateShape{Header: http.Header{
		"Cache-Control":      {"no-store"},
		"X-Token-Subject":    {"c_" + strings.Repeat("x", 22)},
		"X-Token-Client-Id":  {"c_" + strings.Repeat("x", 22)},
		"X-Token-Scope":      {"read"},
		"X-Token-Tenant":     {""},
		"X-Token-Expires-At": {"1767225600"},
	}}
}

// probeValidateShape asks a real node's /validate once and records its
// answer so the baseline can reproduce it byte for byte.
func probeValidateShape(ctx context.Context, c *http.Client, n node, token string) (validateShape, error) {
	r, err := do(c, newValidateReq(ctx, n, token), true)
	if err != nil {
		return validateShape{}, fmt.Errorf("probing %s: %w", n.Validate, err)
	}
	if r.Status != http.StatusOK {
		return validateShape{}, fmt.Errorf("probing %s: status %d for a freshly issued token", n.Validate, r.Status)
	}
	h := http.Header{}
	for k, v := range r.Header {
		switch k {
		case "Date", "Content-Length", "Connection", "Keep-Alive", "Transfer-Encoding":
			continue
		}
		h[k] = v
	}
	return validateShape{Header: h, Body: r.Body}, nil
}

// baselineHandler serves GET /validate the way tokend does, minus
// everything that makes tokend tokend: parse the bearer token, SHA-256 it,
// look the hash up in a read-locked map, answer 200 with the recorded
// headers and body or 401 with a Bearer challenge.
type baselineHandler struct {
	mu    sync.RWMutex
	known map[[32]byte]struct{}
	shape validateShape
}

func newBaselineHandler(shape validateShape, tokens []string) *baselineHandler {
	b := &baselineHandler{known: make(map[[32]byte]struct{}, len(tokens)), shape: shape}
	for _, t := range tokens {
		b.known[sha256.Sum256([]byte(t))] = struct{}{}
	}
	return b
}

func (b *baselineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/validate" && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
		http.NotFound(w, r)
		return
	}
	if r.URL.Path != "/validate" {
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok {
		sum := sha256.Sum256([]byte(tok))
		b.mu.RLock()
		_, ok = b.known[sum]
		b.mu.RUnlock()
	}
	h := w.Header()
	if !ok {
		h["Www-Authenticate"] = []string{`Bearer error="invalid_token"`}
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	for k, v := range b.shape.Header {
		h[k] = v
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.shape.Body)
}

// baselineServer is the in-process bare net/http server.
type baselineServer struct {
	URL string
	srv *http.Server
}

func startBaseline(h http.Handler) (*baselineServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // nothing to report to; the run's errors will show it
		}
	}()
	return &baselineServer{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

func (b *baselineServer) Close() {
	if b.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if b.srv.Shutdown(ctx) != nil {
		_ = b.srv.Close()
	}
}
