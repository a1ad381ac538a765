package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/gateway"
	"github.com/tokend/tokend/httpapi"
)

const adminToken = "gateway-test-admin-token-0123456789abcdef"

// replicator applies commands to the FSM in call order, and refuses reads
// while unready is set, like a node without a read lease.
type replicator struct {
	f       *fsm.FSM
	mu      sync.Mutex
	idx     uint64
	unready atomic.Bool
}

func (r *replicator) Apply(_ context.Context, cmd []byte) (fsm.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idx++
	return r.f.Apply(r.idx, cmd), nil
}

func (r *replicator) ReadReady() error {
	if r.unready.Load() {
		return errNoLease{}
	}
	return nil
}

func (r *replicator) BeginRead() (int64, error) { return 0, r.ReadReady() }

func (r *replicator) FinishRead(context.Context, int64, uint64) error { return nil }

type errNoLease struct{}

func (errNoLease) Error() string             { return "no read lease" }
func (errNoLease) RetryAfter() time.Duration { return 2 * time.Second }

// env is one API served twice: by net/http (main) and by the gateway
// (fast), over the same state and the same metrics registry.
type env struct {
	t          testing.TB
	main, fast string
	rep        *replicator
	reg        *prometheus.Registry
	gw         *gateway.Server
	api        *httpapi.Server
}

func newEnv(t testing.TB) *env {
	t.Helper()
	f := fsm.New()
	e := &env{t: t, rep: &replicator{f: f}, reg: prometheus.NewRegistry()}
	api, err := httpapi.New(httpapi.Config{
		FSM: f, Replicator: e.rep, AdminToken: adminToken, Issuer: "http://tokend.test",
		Registry: e.reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.api = api
	main := httptest.NewServer(api)
	t.Cleanup(main.Close)
	e.main = main.URL
	e.gw, err = gateway.New(gateway.Config{Validator: api.Validator(), Fallback: api.FastPathFallback(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.gw.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	e.fast = "http://" + ln.Addr().String()
	return e
}

// noRedirects shows a redirect as it is answered.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type answer struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(method, url string, header map[string]string, body string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	resp.Header.Del("Date")
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// seed registers a client and a user and returns a password-grant access
// token (scope "read write", subject acme/bob), its refresh token, and a
// client_credentials access token (scope "read", subject the client).
func (e *env) seed() (user, refresh, service string) {
	e.t.Helper()
	admin := map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/json"}
	a := e.do(http.MethodPost, e.main+"/admin/clients", admin,
		`{"name":"gw","grant_types":["password","client_credentials","refresh_token"],"scopes":["read","write"]}`)
	var c struct{ ClientID, ClientSecret string }
	if err := json.Unmarshal([]byte(a.body), &struct {
		ID     *string `json:"client_id"`
		Secret *string `json:"client_secret"`
	}{&c.ClientID, &c.ClientSecret}); err != nil || a.status != http.StatusCreated {
		e.t.Fatalf("create client: %d %s", a.status, a.body)
	}
	if a := e.do(http.MethodPost, e.main+"/admin/users", admin,
		`{"tenant":"acme","username":"bob","password":"correct horse"}`); a.status != http.StatusCreated {
		e.t.Fatalf("create user: %d %s", a.status, a.body)
	}
	token := func(form url.Values) (access, refresh string) {
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret)
		a := e.do(http.MethodPost, e.main+"/token", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form.Encode())
		var tr struct {
			Access  string `json:"access_token"`
			Refresh string `json:"refresh_token"`
		}
		if err := json.Unmarshal([]byte(a.body), &tr); err != nil || a.status != http.StatusOK {
			e.t.Fatalf("token: %d %s", a.status, a.body)
		}
		return tr.Access, tr.Refresh
	}
	user, refresh = token(url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"correct horse"},
		"tenant_id": {"acme"}, "scope": {"read write"}})
	service, _ = token(url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	return user, refresh, service
}

// The /validate cases run against both listeners: each must answer as
// expected, and the two answers must be the same, header for header and
// byte for byte (but Date).
func TestBothListenersAnswerAlike(t *testing.T) {
	e := newEnv(t)
	user, refresh, service := e.seed()
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	cases := []struct {
		name, method, path string
		header             map[string]string
		status             int
		check              func(answer) bool
	}{
		{"user token", "GET", "/validate", bearer(user), 200, func(a answer) bool {
			return a.header.Get("X-Token-Subject") == "acme/bob" && a.header.Get("X-Token-Tenant") == "acme" &&
				a.header.Get("X-Token-Scope") == "read write" && a.header.Get("Cache-Control") == "no-store" &&
				a.header.Get("X-Token-Expires-At") != "" && a.header.Get("X-Token-Client-Id") != ""
		}},
		{"service token", "GET", "/validate", bearer(service), 200, func(a answer) bool {
			return a.header.Get("X-Token-Subject") == a.header.Get("X-Token-Client-Id") && a.header.Get("X-Token-Tenant") == ""
		}},
		{"HEAD", "HEAD", "/validate", bearer(user), 200, nil},
		{"lower-case scheme", "GET", "/validate", map[string]string{"Authorization": "bearer  " + user + " "}, 200, nil},
		{"scope held", "GET", "/validate?scope=read+write", bearer(user), 200, nil},
		{"scope held, other params", "GET", "/validate?x=1&scope=write&y", bearer(user), 200, nil},
		{"scope missing", "GET", "/validate?scope=read%20delete", bearer(user), 403, func(a answer) bool {
			return a.header.Get("WWW-Authenticate") == `Bearer error="insufficient_scope", scope="read delete"`
		}},
		{"scope unquotable", "GET", "/validate?scope=%22x", bearer(user), 403, func(a answer) bool {
			return a.header.Get("WWW-Authenticate") == `Bearer error="insufficient_scope"`
		}},
		{"no token", "GET", "/validate", nil, 401, func(a answer) bool {
			return a.header.Get("WWW-Authenticate") == `Bearer realm="tokend"`
		}},
		{"Basic", "GET", "/validate", map[string]string{"Authorization": "Basic eDp5"}, 401, nil},
		{"empty bearer", "GET", "/validate", map[string]string{"Authorization": "Bearer   "}, 401, nil},
		{"unknown token", "GET", "/validate", bearer("tkda-nope"), 401, func(a answer) bool {
			return a.header.Get("WWW-Authenticate") == `Bearer error="invalid_token"`
		}},
		{"refresh token", "GET", "/validate", bearer(refresh), 401, nil},
		{"POST", "POST", "/validate", bearer(user), 405, nil},
		{"trailing slash", "GET", "/validate/", bearer(user), 404, nil},
		{"unclean path", "GET", "//validate", bearer(user), 301, nil},
		{"escaped path", "GET", "/%76alidate", bearer(user), 200, nil},
		{"healthz", "GET", "/healthz", nil, 200, nil},
		{"readyz", "GET", "/readyz", nil, 200, nil},
	}
	for _, c := range cases {
		main := e.do(c.method, e.main+c.path, c.header, "")
		fast := e.do(c.method, e.fast+c.path, c.header, "")
		if main.status != c.status || (c.check != nil && !c.check(main)) {
			t.Errorf("%s: main %d %v %q, want %d", c.name, main.status, main.header, main.body, c.status)
		}
		if !reflect.DeepEqual(main, fast) {
			t.Errorf("%s: the listeners differ\nmain %d %v %q\nfast %d %v %q", c.name,
				main.status, main.header, main.body, fast.status, fast.header, fast.body)
		}
	}
	// Only what gateways need is on the fast listener.
	for _, path := range []string{"/token", "/oauth/introspect", "/admin/clients", "/metrics", "/authorize"} {
		if a := e.do("GET", e.fast+path, map[string]string{"Authorization": "Bearer " + adminToken}, ""); a.status != 404 ||
			!strings.Contains(a.body, `"error":"not_found"`) {
			t.Errorf("fast %s: %d %s, want the JSON 404", path, a.status, a.body)
		}
	}
}

// While the node may not serve reads, both listeners answer /validate and
// /readyz with the same 503, Retry-After and JSON error.
func TestBothListenersHonourTheReadinessGate(t *testing.T) {
	e := newEnv(t)
	user, _, _ := e.seed()
	e.rep.unready.Store(true)
	for _, path := range []string{"/validate", "/readyz"} {
		h := map[string]string{"Authorization": "Bearer " + user}
		main, fast := e.do("GET", e.main+path, h, ""), e.do("GET", e.fast+path, h, "")
		if main.status != 503 || main.header.Get("Retry-After") != "2" || !strings.Contains(main.body, "temporarily_unavailable") {
			t.Errorf("main %s: %d %v %s", path, main.status, main.header, main.body)
		}
		if !reflect.DeepEqual(main, fast) {
			t.Errorf("%s: the listeners differ\nmain %+v\nfast %+v", path, main, fast)
		}
	}
	if a := e.do("GET", e.fast+"/healthz", nil, ""); a.status != 200 {
		t.Errorf("fast /healthz while unready: %d (the process is up)", a.status)
	}
}

// Requests on the fast listener count in the same /validate series as
// the main listener's, so dashboards see one route.
func TestFastListenerRecordsRouteMetrics(t *testing.T) {
	e := newEnv(t)
	user, _, _ := e.seed()
	before := e.count("/validate", "200")
	for range 3 {
		e.do("GET", e.fast+"/validate", map[string]string{"Authorization": "Bearer " + user}, "")
	}
	e.do("GET", e.fast+"/validate", nil, "")
	if got := e.count("/validate", "200") - before; got != 3 {
		t.Errorf("route=/validate code=200 grew by %v, want 3", got)
	}
	if got := e.count("/validate", "401"); got != 1 {
		t.Errorf("route=/validate code=401 = %v, want 1", got)
	}
}

func (e *env) count(route, code string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tokend_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A valid token costs the fast listener no allocation: the lookup, the
// header values and the metrics all work in place.
func TestFastValidateAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's bookkeeping allocates")
	}
	e := newEnv(t)
	user, _, _ := e.seed()
	var req fasthttp.Request
	req.SetRequestURI("/validate")
	req.Header.Set("Authorization", "Bearer "+user)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	h := e.gw.Handler()
	allocs := testing.AllocsPerRun(200, func() {
		ctx.Response.Reset()
		h(&ctx)
	})
	if ctx.Response.StatusCode() != 200 || !bytes.Equal(ctx.Response.Header.Peek("X-Token-Subject"), []byte("acme/bob")) {
		t.Fatalf("answer: %d %s", ctx.Response.StatusCode(), ctx.Response.Header.String())
	}
	if allocs != 0 {
		t.Errorf("%v allocations per valid request, want 0", allocs)
	}
}

// BenchmarkFastValidate is the fast listener's handler for one valid
// token, without the network: what package gateway and httpapi's
// Validator cost per request.
func BenchmarkFastValidate(b *testing.B) {
	e := newEnv(b)
	user, _, _ := e.seed()
	var req fasthttp.Request
	req.SetRequestURI("/validate")
	req.Header.Set("Authorization", "Bearer "+user)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	h := e.gw.Handler()
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h(&ctx)
	}
	if ctx.Response.StatusCode() != 200 {
		b.Fatal(ctx.Response.StatusCode())
	}
}

// A header block over the fast listener's bound is refused, not read.
func TestFastListenerBoundsHeaders(t *testing.T) {
	e := newEnv(t)
	user, _, _ := e.seed()
	big := map[string]string{"Authorization": "Bearer " + user, "Cookie": "c=" + strings.Repeat("x", 20<<10)}
	if a := e.do("GET", e.fast+"/validate", big, ""); a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("20 KiB of headers: %d, want 431", a.status)
	}
	small := map[string]string{"Authorization": "Bearer " + user, "Cookie": "c=" + strings.Repeat("x", 8<<10)}
	if a := e.do("GET", e.fast+"/validate", small, ""); a.status != http.StatusOK {
		t.Errorf("8 KiB of headers: %d, want 200", a.status)
	}
}

// Validate keeps nothing of the strings it is given: the gateway passes
// views of fasthttp's buffers, which the next request overwrites.
func TestValidateKeepsNoBorrowedBytes(t *testing.T) {
	e := newEnv(t)
	user, _, _ := e.seed()
	authz := []byte("Bearer " + user)
	query := []byte("scope=read%20delete")
	view := func(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
	a := e.api.Validator().Validate(view(authz), view(query))
	for i := range authz {
		authz[i] = 'x'
	}
	for i := range query {
		query[i] = 'x'
	}
	if a.Status != http.StatusForbidden || a.Challenge != `Bearer error="insufficient_scope", scope="read delete"` {
		t.Errorf("after the buffers changed: %d %q", a.Status, a.Challenge)
	}
	query = []byte("scope=read")
	a = e.api.Validator().Validate(view([]byte("Bearer "+user)), view(query))
	for i := range query {
		query[i] = 'x'
	}
	var got []string
	for i, name := range httpapi.ValidHeaderNames() {
		got = append(got, name+": "+string(a.AppendHeader(nil, i)))
	}
	if a.Status != http.StatusOK || got[0] != "X-Token-Subject: acme/bob" || got[2] != "X-Token-Scope: read write" {
		t.Errorf("answer: %d %q", a.Status, got)
	}
}
