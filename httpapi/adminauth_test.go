package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/internal/syncbuf"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type adminEnv struct {
	s     *Server
	reg   *prometheus.Registry
	clock *testClock
	logs  syncbuf.Buffer
}

func newAdminEnv(t *testing.T, separate bool) *adminEnv {
	t.Helper()
	f := fsm.New()
	e := &adminEnv{reg: prometheus.NewRegistry(), clock: &testClock{t: time.Unix(1_800_000_000, 0)}}
	s, err := New(Config{
		FSM: f, Replicator: &memReplicator{f: f}, Issuer: "http://tokend.test",
		AdminToken: testAdminToken, SeparateAdmin: separate,
		Status:   func() any { return map[string]string{"node_id": "n1"} },
		Logger:   slog.New(slog.NewTextHandler(&e.logs, nil)),
		Registry: e.reg, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

func (e *adminEnv) log() string { return e.logs.String() }

// call sends one request from remote (host:port) to h.
func call(h http.Handler, method, path, remote, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("not a JSON error (%d): %q", rec.Code, rec.Body)
	}
	return e.Error
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// adminSurface is every kind of path on the admin surface, with whether it
// needs the token.
var adminSurface = []struct {
	path   string
	authed bool
}{
	{"/admin/clients", true},
	{"/admin/users", true},
	{"/cluster/status", true},
	{"/debug/pprof/", true},
	{"/debug/pprof/cmdline", true},
	{"/debug/pprof/heap", true},
	{"/debug/pprof/goroutine?debug=1", true},
	{"/metrics", false},
}

const remote = "192.0.2.10:40000"

func TestNewRefusesShortAdminToken(t *testing.T) {
	f := fsm.New()
	for _, tok := range []string{"x", "admin-secret", strings.Repeat("a", MinAdminTokenLen-1)} {
		if _, err := New(Config{FSM: f, Replicator: &memReplicator{f: f}, AdminToken: tok}); err == nil {
			t.Errorf("New accepted a %d-byte admin token", len(tok))
		}
	}
	for _, tok := range []string{"", strings.Repeat("a", MinAdminTokenLen)} {
		if _, err := New(Config{FSM: f, Replicator: &memReplicator{f: f}, AdminToken: tok}); err != nil {
			t.Errorf("New refused a %d-byte admin token: %v", len(tok), err)
		}
	}
}

// With SeparateAdmin the public handler knows nothing of the admin surface
// and the admin handler serves it, and nothing else.
func TestSeparateAdminSplitsTheSurface(t *testing.T) {
	e := newAdminEnv(t, true)
	for _, p := range adminSurface {
		if rec := call(e.s, http.MethodGet, p.path, remote, testAdminToken); rec.Code != http.StatusNotFound || errorCode(t, rec) != "not_found" {
			t.Errorf("public %s: %d %s, want 404 not_found", p.path, rec.Code, rec.Body)
		}
		if rec := call(e.s.AdminHandler(), http.MethodGet, p.path, remote, testAdminToken); rec.Code != http.StatusOK {
			t.Errorf("admin %s with token: %d %s", p.path, rec.Code, rec.Body)
		}
	}
	if rec := call(e.s, http.MethodPost, "/admin/clients", remote, testAdminToken); rec.Code != http.StatusNotFound {
		t.Errorf("public POST /admin/clients: %d", rec.Code)
	}
	for _, path := range []string{"/healthz", "/.well-known/oauth-authorization-server"} {
		if rec := call(e.s, http.MethodGet, path, remote, ""); rec.Code != http.StatusOK {
			t.Errorf("public %s: %d", path, rec.Code)
		}
		if rec := call(e.s.AdminHandler(), http.MethodGet, path, remote, ""); rec.Code != http.StatusNotFound {
			t.Errorf("admin handler serves %s: %d", path, rec.Code)
		}
	}
	// The routes on the admin handler are instrumented like the rest.
	if !strings.Contains(scrape(t, e.s.AdminHandler()), `tokend_http_requests_total{code="200",route="/debug/pprof/{profile}"} 2`) {
		t.Errorf("pprof requests not counted by route")
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := call(h, http.MethodGet, "/metrics", remote, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// Without SeparateAdmin the admin surface is on the main handler, behind
// the token except for /metrics.
func TestAdminSurfaceNeedsToken(t *testing.T) {
	e := newAdminEnv(t, false)
	for _, h := range []http.Handler{e.s, e.s.AdminHandler()} {
		for _, p := range adminSurface {
			rec := call(h, http.MethodGet, p.path, remote, "")
			switch {
			case p.authed && (rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == ""):
				t.Errorf("%s without token: %d %q, want 401 with a challenge", p.path, rec.Code, rec.Header().Get("WWW-Authenticate"))
			case !p.authed && rec.Code != http.StatusOK:
				t.Errorf("%s without token: %d, want 200", p.path, rec.Code)
			}
			if rec := call(h, http.MethodGet, p.path, remote, testAdminToken); rec.Code != http.StatusOK {
				t.Errorf("%s with token: %d %s", p.path, rec.Code, rec.Body)
			}
		}
		if rec := call(h, http.MethodGet, "/cluster/status", remote, testAdminToken+"x"); rec.Code != http.StatusUnauthorized {
			t.Errorf("/cluster/status with a longer wrong token: %d", rec.Code)
		}
		if rec := call(h, http.MethodPatch, "/admin/clients", remote, testAdminToken); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("PATCH /admin/clients: %d, want 405", rec.Code)
		}
		if rec := call(h, http.MethodGet, "/admin/nothing", remote, testAdminToken); rec.Code != http.StatusNotFound || errorCode(t, rec) != "not_found" {
			t.Errorf("/admin/nothing: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := call(e.s, http.MethodGet, "/healthz", remote, ""); rec.Code != http.StatusOK {
		t.Errorf("/healthz: %d", rec.Code)
	}
}

// Without an admin token the whole authenticated surface is off.
func TestNoAdminTokenDisablesSurface(t *testing.T) {
	f := fsm.New()
	s, err := New(Config{FSM: f, Replicator: &memReplicator{f: f}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range adminSurface {
		rec := call(s, http.MethodGet, p.path, remote, "")
		if want := map[bool]int{true: http.StatusNotFound, false: http.StatusOK}[p.authed]; rec.Code != want {
			t.Errorf("%s: %d, want %d", p.path, rec.Code, want)
		}
	}
}

func TestAdminAuthThrottle(t *testing.T) {
	e := newAdminEnv(t, true)
	h := e.s.AdminHandler()
	const other = "192.0.2.20:40000"
	for i := 0; i < adminFailLimit; i++ {
		e.clock.Add(time.Second)
		if rec := call(h, http.MethodGet, "/cluster/status", remote, "wrong-token"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d, want 401", i+1, rec.Code)
		}
		if i == adminFailLimit-2 && strings.Contains(e.log(), "throttled") {
			t.Fatalf("throttled before %d failures", adminFailLimit)
		}
	}
	if !strings.Contains(e.log(), "192.0.2.10") || strings.Contains(e.log(), "wrong-token") {
		t.Errorf("throttle warning must name the address and not the token:\n%s", e.log())
	}

	rec := call(h, http.MethodGet, "/admin/clients", remote, testAdminToken)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "60" || errorCode(t, rec) != "temporarily_unavailable" {
		t.Fatalf("good token after %d failures: %d Retry-After=%q %s, want 429 Retry-After 60",
			adminFailLimit, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	// Other addresses are not affected.
	if rec := call(h, http.MethodGet, "/admin/clients", other, testAdminToken); rec.Code != http.StatusOK {
		t.Fatalf("another address: %d", rec.Code)
	}
	e.clock.Add(adminFailWindow - time.Second)
	if rec := call(h, http.MethodGet, "/cluster/status", remote, testAdminToken); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("a second before the window ends: %d Retry-After=%q", rec.Code, rec.Header().Get("Retry-After"))
	}
	e.clock.Add(time.Second)
	if rec := call(h, http.MethodGet, "/admin/clients", remote, testAdminToken); rec.Code != http.StatusOK {
		t.Fatalf("good token after the window: %d %s", rec.Code, rec.Body)
	}
	if got := counter(t, e.reg, "tokend_admin_auth_failures_total"); got != adminFailLimit {
		t.Errorf("tokend_admin_auth_failures_total = %v, want %d", got, adminFailLimit)
	}
	if got := counter(t, e.reg, "tokend_admin_auth_throttled_total"); got != 2 {
		t.Errorf("tokend_admin_auth_throttled_total = %v, want 2", got)
	}
	// Scraping needs no token and still works for the throttled address.
	if !strings.Contains(scrape(t, h), "tokend_admin_auth_failures_total 10") {
		t.Errorf("/metrics lacks the failure count")
	}
}

// Failures spread wider than the window never add up to a block, and
// requests without credentials are not counted at all.
func TestAdminAuthThrottleWindowSlides(t *testing.T) {
	e := newAdminEnv(t, true)
	h := e.s.AdminHandler()
	for i := 0; i < 3*adminFailLimit; i++ {
		e.clock.Add(adminFailWindow/(adminFailLimit-1) + time.Millisecond)
		if rec := call(h, http.MethodGet, "/cluster/status", remote, "wrong-token"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("slow failure %d: %d, want 401", i+1, rec.Code)
		}
	}
	for i := 0; i < 3*adminFailLimit; i++ {
		if rec := call(h, http.MethodGet, "/cluster/status", remote, ""); rec.Code != http.StatusUnauthorized {
			t.Fatalf("request without token: %d, want 401", rec.Code)
		}
	}
	if rec := call(h, http.MethodGet, "/cluster/status", remote, testAdminToken); rec.Code != http.StatusOK {
		t.Fatalf("good token: %d, want 200", rec.Code)
	}
	if got := counter(t, e.reg, "tokend_admin_auth_failures_total"); got != 3*adminFailLimit {
		t.Errorf("tokend_admin_auth_failures_total = %v, want %d", got, 3*adminFailLimit)
	}
}

func TestAdminThrottleIsBounded(t *testing.T) {
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	th := newAdminThrottle(clock.Now, 3)
	for i := 0; i < adminFailLimit; i++ {
		th.fail("a")
	}
	if th.blocked("a") == 0 {
		t.Fatal("a not blocked")
	}
	for _, k := range []string{"b", "c", "d", "e"} {
		clock.Add(time.Millisecond)
		th.fail(k)
	}
	if len(th.entries) != 3 || th.order.Len() != 3 {
		t.Fatalf("%d entries (%d listed), want 3", len(th.entries), th.order.Len())
	}
	if _, ok := th.entries["b"]; ok {
		t.Error("least recently failed key kept")
	}
	if _, ok := th.entries["e"]; !ok {
		t.Error("newest key dropped")
	}
}

func TestThrottleKey(t *testing.T) {
	if throttleKey("192.0.2.1") != "192.0.2.1" {
		t.Error("IPv4 address not kept")
	}
	if a, b := throttleKey("2001:db8::1"), throttleKey("2001:db8::ffff:2"); a != b {
		t.Errorf("one /64, two keys: %s %s", a, b)
	}
	if a, b := throttleKey("2001:db8::1"), throttleKey("2001:db8:0:1::1"); a == b {
		t.Errorf("two /64s, one key: %s", a)
	}
}

// TestAdminThrottleBehindTrustedProxy: behind a trusted reverse proxy the
// throttle counts the client the proxy names, so one guesser cannot lock
// the operator out through the shared proxy address.
func TestAdminThrottleBehindTrustedProxy(t *testing.T) {
	e := newAdminEnv(t, true)
	e.s.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	h := e.s.AdminHandler()
	via := func(client, token string) int {
		req := httptest.NewRequest(http.MethodGet, "/admin/clients", nil)
		req.RemoteAddr = "10.0.0.1:50000"
		req.Header.Set("X-Forwarded-For", client)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := 0; i < adminFailLimit; i++ {
		e.clock.Add(time.Second)
		via("198.51.100.66", "wrong-token")
	}
	if code := via("198.51.100.66", testAdminToken); code != http.StatusTooManyRequests {
		t.Fatalf("the guesser behind the proxy: %d, want 429", code)
	}
	if code := via("198.51.100.7", testAdminToken); code != http.StatusOK {
		t.Fatalf("the operator behind the same proxy: %d, want 200", code)
	}
}
