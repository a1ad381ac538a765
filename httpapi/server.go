package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend/fsm"
)

// Replicator is what the HTTP layer needs from consensus.
type Replicator interface {
	// Apply replicates an encoded fsm command and returns its result once
	// it is applied everywhere reads are served. Errors that mean "try
	// later" implement RetryAfter() time.Duration.
	Apply(ctx context.Context, cmd []byte) (fsm.Result, error)
	// ReadReady is nil when this node may answer reads from local state.
	ReadReady() error
	// BeginRead is ReadReady for one read of token state, plus a fence
	// for FinishRead (an instant on the replicator's own clock).
	BeginRead() (fence int64, err error)
	// FinishRead is called after the read's lookup with the fence and
	// fsm.FSM.InFlight of the token read (0: no write to it in flight).
	// It returns nil once the answer may be given: the lookup was made
	// while this node could serve reads, and what it saw is visible on
	// every node that does (a wait, bounded by ctx, only while a write
	// to the token is in flight); else an error with RetryAfter.
	FinishRead(ctx context.Context, fence int64, index uint64) error
}

// Config configures a Server. FSM and Replicator are required.
type Config struct {
	FSM        *fsm.FSM
	Replicator Replicator
	// Status returns the body of GET /cluster/status.
	Status func() any
	// Leave, when set, backs POST /admin/cluster/leave: this node leaves
	// the cluster gracefully.
	Leave func(context.Context) error
	// NodeID and HandOff let a sign-in that started on another node be
	// handed to that node (handoff.go); without them sign-in state is
	// only ever local. HandOff sends the request to the named node over
	// the cluster's internal port and returns that node's answer.
	NodeID  string
	HandOff func(ctx context.Context, nodeID string, r *http.Request) (*http.Response, error)

	Issuer string
	// AdminToken is the bearer token of the admin surface: /admin/*,
	// /cluster/status and /debug/pprof/. Empty disables all three; a
	// non-empty one must be at least MinAdminTokenLen bytes.
	AdminToken string
	// SeparateAdmin takes the admin surface (/admin/*, /metrics,
	// /cluster/status, /debug/pprof/) off ServeHTTP, which then answers
	// 404 for it: it is served by AdminHandler alone, on a listener of
	// its own.
	SeparateAdmin bool

	AccessTTL, RefreshTTL, CodeTTL time.Duration
	// RefreshGrace is how long a just-rotated refresh token may be
	// presented again (a retry after a lost response) without being
	// treated as reuse.
	RefreshGrace time.Duration
	// SecureCookies marks session cookies Secure (serving over TLS).
	SecureCookies bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// Forwarded headers name the client address that failed sign-ins
	// count against (clientaddr.go); without them it is the TCP peer.
	TrustedProxies []netip.Prefix

	// Signer signs ID tokens and JWT access tokens with the cluster's
	// replicated key set; nil turns OpenID Connect and JWT access
	// tokens off (they answer a clear error and are not advertised).
	Signer Signer
	// IDTokenTTL is the lifetime of an ID token (default AccessTTL).
	IDTokenTTL time.Duration
	// Keys backs GET /admin/keys and POST /admin/keys/rotate
	// (adminkeys.go); nil: both answer 501.
	Keys KeyAdmin

	Logger   *slog.Logger
	Registry *prometheus.Registry // nil: a private registry
	Now      func() time.Time
}

// Server is tokend's HTTP handler.
type Server struct {
	cfg    Config
	fsm    *fsm.FSM
	rep    Replicator
	log    *slog.Logger
	now    func() time.Time
	router *mux.Router
	// adminRouter serves the admin surface; router mounts it unless
	// SeparateAdmin.
	adminRouter *mux.Router
	// validateRoute is /validate with its instrumentation, for the
	// fast path in ServeHTTP.
	validateRoute http.Handler
	// postRoutes are the POST-only OAuth endpoints with their
	// instrumentation, by exact path, for the same fast path.
	postRoutes    map[string]http.Handler
	metrics       *metrics
	limiter       *loginLimiter
	adminThrottle *adminThrottle
	adminDigest   [sha256.Size]byte
	pages         *pages
	// sessions holds this node's pending sign-ins (session.go).
	sessions *signInSessions
	// dummyHash is checked when a user does not exist, so a login for an
	// unknown user costs as much as one for a known user.
	dummyHash string
}

// New builds the router.
func New(cfg Config) (*Server, error) {
	if cfg.FSM == nil || cfg.Replicator == nil {
		return nil, errors.New("httpapi: FSM and Replicator are required")
	}
	if cfg.AdminToken != "" && len(cfg.AdminToken) < MinAdminTokenLen {
		return nil, fmt.Errorf("httpapi: the admin token must be at least %d bytes, got %d", MinAdminTokenLen, len(cfg.AdminToken))
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 30 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 12 * time.Hour
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 60 * time.Second
	}
	if cfg.RefreshGrace < 0 {
		cfg.RefreshGrace = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Status == nil {
		cfg.Status = func() any { return map[string]string{} }
	}
	s := &Server{
		cfg:       cfg,
		fsm:       cfg.FSM,
		rep:       cfg.Replicator,
		log:       cfg.Logger,
		now:       cfg.Now,
		dummyHash: HashPassword("tokend-timing-equaliser"),

		sessions:      newSignInSessions(maxSessions, sessionTTL, cfg.NodeID),
		adminThrottle: newAdminThrottle(cfg.Now, adminThrottleMaxKeys),
		adminDigest:   sha256.Sum256([]byte(cfg.AdminToken)),
	}
	var err error
	if s.metrics, err = newMetrics(cfg.Registry, cfg.FSM); err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	if s.limiter, err = newLoginLimiter(cfg.Now, cfg.Registry); err != nil {
		return nil, fmt.Errorf("httpapi: login limiter metrics: %w", err)
	}
	if s.pages, err = newPages(); err != nil {
		return nil, fmt.Errorf("httpapi: pages: %w", err)
	}
	s.routes()
	return s, nil
}

// ServeHTTP makes Server an http.Handler. The gateway hot path, GET
// /validate, and the POST-only OAuth endpoints skip gorilla/mux: the router tries its routes in order with
// regexps and copies the request to attach route variables, which cost
// about a fifth of the handler's time in BenchmarkValidateHandler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/validate" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		s.validateRoute.ServeHTTP(w, r)
		return
	}
	if _, ok := r.Header[clientAddrHeader]; ok {
		// Only HandOffHandler may say where a sign-in came from
		// (clientaddr.go); nothing downstream sees a browser's claim.
		r = r.Clone(r.Context())
		r.Header.Del(clientAddrHeader)
	}
	// The token, introspection and revocation endpoints take no route
	// variables, so an exact path match is all the router would do
	// for them, minus its regexps and two request copies.
	if r.Method == http.MethodPost {
		if h := s.postRoutes[r.URL.Path]; h != nil {
			h.ServeHTTP(w, r)
			return
		}
	}
	s.router.ServeHTTP(w, r)
}

// AdminHandler serves the admin surface alone: /admin/*, /metrics,
// /cluster/status and /debug/pprof/, every other path 404. With
// SeparateAdmin it is the only way to reach them.
func (s *Server) AdminHandler() http.Handler { return s.adminRouter }

// newRouter returns a router whose misses are JSON errors.
func (s *Server) newRouter() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no such endpoint"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusMethodNotAllowed, "invalid_request", "method not allowed"))
	})
	return r
}

func (s *Server) routes() {
	r := s.newRouter()
	s.postRoutes = map[string]http.Handler{}

	// OAuth endpoints at the Toon guide's paths and the Martini /oauth/ ones.
	for _, prefix := range []string{"", "/oauth"} {
		s.handle(r, prefix+"/authorize", s.authorize, http.MethodGet, http.MethodPost)
		s.handle(r, prefix+"/authorize/login", s.authorizeLogin, http.MethodPost)
		s.handle(r, prefix+"/authorize/consent", s.authorizeConsent, http.MethodPost)
		for _, e := range []struct {
			path string
			h    http.HandlerFunc
		}{{"/token", s.token}, {"/revoke", s.revoke}, {"/introspect", s.introspect}} {
			route := s.instrument(prefix+e.path, e.h)
			r.Handle(prefix+e.path, route).Methods(http.MethodPost)
			s.postRoutes[prefix+e.path] = route
		}
	}
	s.validateRoute = s.instrument("/validate", s.validate)
	r.Handle("/validate", s.validateRoute).Methods(http.MethodGet, http.MethodHead)
	s.handle(r, "/.well-known/oauth-authorization-server", s.metadata, http.MethodGet)
	// OpenID Connect (metadata.go, jwks.go, userinfo.go, endsession.go).
	s.handle(r, "/.well-known/openid-configuration", s.openIDConfiguration, http.MethodGet)
	s.handle(r, jwksPath, s.jwks, http.MethodGet)
	s.handle(r, "/userinfo", s.userinfo, http.MethodGet, http.MethodPost)
	s.handle(r, "/end_session", s.endSession, http.MethodGet, http.MethodPost)
	s.handle(r, "/static/{file}", s.static, http.MethodGet)

	s.adminRouter = s.adminRoutes()
	if !s.cfg.SeparateAdmin {
		for _, prefix := range adminPrefixes {
			r.PathPrefix(prefix).Handler(s.adminRouter)
		}
		for _, path := range adminPaths {
			r.Handle(path, s.adminRouter)
		}
	}

	s.handle(r, "/healthz", s.healthz, http.MethodGet, http.MethodHead)
	s.handle(r, "/readyz", s.readyz, http.MethodGet, http.MethodHead)
	s.router = r
}

// The admin surface: what adminRoutes serves, and what the main router
// hands to it when the admin surface shares the main listener.
var (
	adminPrefixes = []string{"/admin/", "/debug/pprof/"}
	adminPaths    = []string{"/metrics", "/cluster/status"}
)

// adminRoutes builds the admin surface's router. Everything on it but
// /metrics needs the admin token: /cluster/status names members and their
// internal addresses, and pprof shows memory that holds tokens.
func (s *Server) adminRoutes() *mux.Router {
	r := s.newRouter()
	// Admin routes hang off the root router with their full paths: a mux
	// subrouter would turn a wrong method on an admin path into 404.
	admin := func(path string, h errorHandler, methods ...string) {
		s.handle(r, "/admin"+path, s.requireAdmin(s.serveErrors(h)).ServeHTTP, methods...)
	}
	admin("/clients", s.createClient, http.MethodPost)
	admin("/clients", s.listClients, http.MethodGet)
	admin("/clients/{id}", s.getClient, http.MethodGet)
	admin("/clients/{id}", s.updateClient, http.MethodPut)
	admin("/clients/{id}", s.deleteClient, http.MethodDelete)
	admin("/clients/{id}/secret", s.rotateSecret, http.MethodPost)
	admin("/users", s.createUser, http.MethodPost)
	admin("/users", s.listUsers, http.MethodGet)
	admin("/users/{tenant}/{username}", s.updateUser, http.MethodPut)
	admin("/users/{tenant}/{username}", s.deleteUser, http.MethodDelete)
	admin("/users/{tenant}/{username}/consents/{client_id}", s.getConsent, http.MethodGet) // adminconsent.go
	admin("/users/{tenant}/{username}/consents/{client_id}", s.forgetConsent, http.MethodDelete)
	admin("/revoke", s.adminRevoke, http.MethodPost)
	admin("/cluster/leave", s.adminLeave, http.MethodPost)
	admin("/snapshot", s.saveSnapshot, http.MethodGet) // snapshot.go
	admin("/snapshot/restore", s.restoreSnapshot, http.MethodPost)
	admin("/keys", s.listKeys, http.MethodGet) // adminkeys.go
	admin("/keys/rotate", s.rotateKeys, http.MethodPost)

	authed := func(path string, h http.HandlerFunc, methods ...string) {
		s.handle(r, path, s.adminAuth(h).ServeHTTP, methods...)
	}
	authed("/cluster/status", s.clusterStatus, http.MethodGet)
	// net/http/pprof, on this router only (its init also registers on
	// http.DefaultServeMux, which tokend never serves).
	authed("/debug/pprof/", pprof.Index, http.MethodGet)
	authed("/debug/pprof/cmdline", pprof.Cmdline, http.MethodGet)
	authed("/debug/pprof/profile", pprof.Profile, http.MethodGet)
	authed("/debug/pprof/symbol", pprof.Symbol, http.MethodGet, http.MethodPost)
	authed("/debug/pprof/trace", pprof.Trace, http.MethodGet)
	authed("/debug/pprof/{profile}", pprof.Index, http.MethodGet) // heap, goroutine, allocs, ...

	r.Handle("/metrics", s.metrics.handler()).Methods(http.MethodGet)
	return r
}

// handle registers h for path and methods, wrapped in panic recovery and
// per-route metrics labelled with the registered path.
func (s *Server) handle(r *mux.Router, path string, h http.HandlerFunc, methods ...string) {
	r.Handle(path, s.instrument(path, h)).Methods(methods...)
}

func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	observe := s.metrics.route(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "handler panic", "route", route, "panic", fmt.Sprint(p))
				if !sw.wrote {
					s.writeError(sw, r, errorf(http.StatusInternalServerError, "server_error", "internal error"))
				}
			}
			observe(sw.status, time.Since(start))
		}()
		h(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// apply encodes and replicates c.
func (s *Server) apply(ctx context.Context, c fsm.Command) (fsm.Result, error) {
	res, err := s.rep.Apply(ctx, fsm.Encode(c))
	if err != nil {
		return res, fmt.Errorf("replicate: %w", err)
	}
	if res.Outcome == fsm.BadCommand {
		return res, errors.New("replicate: command rejected as malformed")
	}
	return res, nil
}
