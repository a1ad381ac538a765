package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
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

// The reference servers: what tokend's /validate is measured against with
// wrk (bench/validate-fastpath.sh). Each answers on 127.0.0.1 only.
const (
	// KindValidate is baselineHandler on net/http: SHA-256, a read-locked
	// map, the recorded headers. The default, and the bench's baseline.
	KindValidate = "validate"
	// KindFixed is net/http answering every request with fixedBody and
	// nothing else: the ceiling of net/http itself on this machine.
	KindFixed = "fixed"
	// KindFastFixed is the same fixed answer from fasthttp: the ceiling
	// of fasthttp on this machine.
	KindFastFixed = "fasthttp-fixed"
	// KindFastValidate is baselineHandler's logic on fasthttp: what a
	// minimal validating fasthttp server costs.
	KindFastValidate = "fasthttp-validate"
)

// referenceKinds lists the kinds in the order the usage text names them.
var referenceKinds = []string{KindValidate, KindFixed, KindFastFixed, KindFastValidate}

// fixedBody is the fixed answer of the two "fixed" references: 163 bytes,
// the body size the issue that asked for them measured with.
var fixedBody = []byte(`{"active":true,"scope":"read","client_id":"c_xxxxxxxxxxxxxxxxxxxxxx","sub":"c_xxxxxxxxxxxxxxxxxxxxx","token_type":"access_token","exp":1767225600,"iat":1767224700}`)

// fixedHandler answers every request with fixedBody.
func fixedHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = []string{"application/json"}
	_, _ = w.Write(fixedBody)
}

// fastFixed is fixedHandler on fasthttp.
func fastFixed(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentType("application/json")
	ctx.Response.SetBodyRaw(fixedBody)
}

// fastValidate is baselineHandler.ServeHTTP on fasthttp: the same checks
// and the same answer.
func (b *baselineHandler) fastValidate(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/validate":
	case "/healthz", "/readyz":
		return
	default:
		ctx.SetStatusCode(http.StatusNotFound)
		return
	}
	tok, ok := bytes.CutPrefix(ctx.Request.Header.Peek("Authorization"), []byte("Bearer "))
	if ok {
		sum := sha256.Sum256(tok)
		b.mu.RLock()
		_, ok = b.known[sum]
		b.mu.RUnlock()
	}
	if !ok {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		ctx.SetStatusCode(http.StatusUnauthorized)
		return
	}
	for k, v := range b.shape.Header {
		for _, x := range v {
			ctx.Response.Header.Add(k, x)
		}
	}
	ctx.Response.SetBodyRaw(b.shape.Body)
}

// newFastServer is a fasthttp server with the bounds a real one would set
// and without the default headers net/http does not send either.
func newFastServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h,
		ReadTimeout:           10 * time.Second,
		IdleTimeout:           120 * time.Second,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
	}
}

// referenceServer is one running reference server.
type referenceServer struct {
	URL      string
	shutdown func(context.Context) error
}

// startReference serves kind on ln (taking ownership of it).
func startReference(ln net.Listener, kind string, shape validateShape, tokens []string) (*referenceServer, error) {
	url := "http://" + ln.Addr().String()
	serveHTTP := func(h http.Handler) *referenceServer {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		return &referenceServer{URL: url, shutdown: srv.Shutdown}
	}
	serveFast := func(h fasthttp.RequestHandler) *referenceServer {
		srv := newFastServer(h)
		go func() { _ = srv.Serve(ln) }()
		return &referenceServer{URL: url, shutdown: srv.ShutdownWithContext}
	}
	switch kind {
	case KindValidate, "":
		return serveHTTP(newBaselineHandler(shape, tokens)), nil
	case KindFixed:
		return serveHTTP(http.HandlerFunc(fixedHandler)), nil
	case KindFastFixed:
		return serveFast(fastFixed), nil
	case KindFastValidate:
		return serveFast(newBaselineHandler(shape, tokens).fastValidate), nil
	}
	ln.Close()
	return nil, fmt.Errorf("unknown reference server kind %q (want one of %s)", kind, strings.Join(referenceKinds, ", "))
}
