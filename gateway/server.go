package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/tokend/tokend/httpapi"
)

// The listener's bounds. fasthttp reads a request's header block into one
// buffer of maxHeaderBytes, held for as long as the connection is being
// served, so it is a quarter of the main listener's MaxHeaderBytes (64
// KiB): roomy for what nginx's auth_request forwards (the client's
// headers, cookies included; nginx's own default limit is 4 lines of 8
// KiB), and 256 MiB at most over maxConcurrency connections instead of
// 1 GiB. A larger header block is answered 431. /validate has no body,
// so a small one suffices.
const (
	maxHeaderBytes  = 16 << 10
	maxBodyBytes    = 4 << 10
	readTimeout     = 15 * time.Second
	writeTimeout    = 30 * time.Second
	idleTimeout     = 2 * time.Minute
	maxConcurrency  = 16 << 10 // connections served at once; more are refused with 503
	validateScratch = 256      // room for a header value but a long scope
)

// Config configures a Server. Validator and Fallback are required.
type Config struct {
	// Validator decides each GET /validate (httpapi.Server.Validator).
	Validator *httpapi.Validator
	// Fallback serves every other request (httpapi.Server.FastPathFallback).
	Fallback http.Handler
	// Logger receives fasthttp's connection errors, at warning level.
	Logger *slog.Logger
}

// Server is the fast /validate listener.
type Server struct {
	v        *httpapi.Validator
	fallback fasthttp.RequestHandler
	// names are httpapi.ValidHeaderNames, already canonical, as bytes:
	// SetCanonical skips the normalising copy SetBytesV makes.
	names [][]byte
	log   *slog.Logger
	srv   *fasthttp.Server
}

// New builds a Server; it serves nothing until Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Validator == nil || cfg.Fallback == nil {
		return nil, errors.New("gateway: Validator and Fallback are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		v:        cfg.Validator,
		fallback: fasthttpadaptor.NewFastHTTPHandler(cfg.Fallback),
		log:      cfg.Logger,
	}
	for _, n := range httpapi.ValidHeaderNames() {
		s.names = append(s.names, []byte(n))
	}
	s.srv = &fasthttp.Server{
		Handler:            s.serve,
		ReadBufferSize:     maxHeaderBytes,
		MaxRequestBodySize: maxBodyBytes,
		ReadTimeout:        readTimeout,
		WriteTimeout:       writeTimeout,
		IdleTimeout:        idleTimeout,
		Concurrency:        maxConcurrency,
		// net/http sends neither: the answers must match the main port's.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		Logger:                slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Serve answers on ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// ServeTLS is Serve over TLS with the certificate and key files of the
// main listener.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.srv.ServeTLS(ln, certFile, keyFile)
}

// Shutdown stops accepting, lets requests in flight finish (a keep-alive
// connection is told Connection: close on its next answer) and closes
// idle connections, giving up when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

// Handler is the request handler, for tests that serve it without a
// listener of their own.
func (s *Server) Handler() fasthttp.RequestHandler { return s.serve }

func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	// The raw path, not fasthttp's normalised one: anything but exactly
	// /validate goes to the fallback, which parses it as net/http does.
	if string(ctx.URI().PathOriginal()) == "/validate" && (ctx.IsGet() || ctx.IsHead()) {
		s.validate(ctx)
		return
	}
	s.fallback(ctx)
}

// validate writes the Validator's answer onto fasthttp's response.
func (s *Server) validate(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "route", "/validate", "panic", fmt.Sprint(p))
			ctx.Response.Reset()
			s.writeError(ctx, errors.New("panic"))
		}
		s.v.Observe(ctx.Response.StatusCode(), time.Since(start))
	}()
	// The strings borrow the request's buffers: Validate keeps neither.
	// The RequestCtx is the context: a read waiting for a write in flight
	// (Replicator.FinishRead) ends when the server shuts down.
	a := s.v.ValidateContext(ctx, borrow(ctx.Request.Header.Peek("Authorization")), borrow(ctx.URI().QueryString()))
	h := &ctx.Response.Header
	switch a.Status {
	case http.StatusOK:
		var scratch [validateScratch]byte
		for i, name := range s.names {
			h.SetCanonical(name, a.AppendHeader(scratch[:0], i))
		}
	case http.StatusServiceUnavailable:
		s.writeError(ctx, a.Err)
		return
	default:
		h.Set("WWW-Authenticate", a.Challenge)
	}
	ctx.SetStatusCode(a.Status)
}

// borrow views b as a string without copying; the string is valid only
// while b's buffer is (until the handler returns).
func borrow(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// errorRequest stands in for the request when httpapi writes an error:
// it only names the path in the log line of an unexpected error.
var errorRequest = &http.Request{Method: http.MethodGet, URL: mustPath("/validate"), Header: http.Header{}}

// writeError has httpapi write err (the JSON error, Retry-After,
// Cache-Control) as the main listener would, and copies it onto ctx.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	w := &recorder{header: http.Header{}, ctx: ctx}
	s.v.WriteError(w, errorRequest.WithContext(ctx), err)
}
