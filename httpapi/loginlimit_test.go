package httpapi

import (
	"context"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/internal/syncbuf"
)

// Tests of the sign-in brute-force limiter (limiter.go) through the whole
// handler stack: the password grant and the login page, with a frozen,
// settable clock. Helpers carry an lt prefix.

type ltEnv struct {
	t     *testing.T
	s     *Server
	f     *fsm.FSM
	clock *testClock
	logs  syncbuf.Buffer
}

func newLTEnv(t *testing.T, opts ...func(*Config)) *ltEnv {
	t.Helper()
	e := &ltEnv{t: t, f: fsm.New(), clock: &testClock{t: time.Unix(1_800_000_000, 0)}}
	cfg := Config{
		FSM: e.f, Replicator: &memReplicator{f: e.f}, Issuer: "http://tokend.test", NodeID: "n1",
		Logger: slog.New(slog.NewTextHandler(&e.logs, nil)), Now: e.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	e.f.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "app", SecretHash: fsm.HashOf("sec"),
		GrantTypes: []string{"password", "authorization_code"}, Scopes: []string{"read"},
		RedirectURIs: []string{"https://app.example/cb"}}}))
	for i, u := range []string{"victim", "bob"} {
		e.f.Apply(uint64(2+i), fsm.Encode(&fsm.PutUser{Create: true, User: fsm.User{Tenant: "default", Username: u,
			PasswordHash: HashPassword(u + "-pw")}}))
	}
	return e
}

func (e *ltEnv) log() string { return e.logs.String() }

// grant tries the password grant from remote (host:port), with header
// name/value pairs.
func (e *ltEnv) grant(remote, username, password string, header ...string) *httptest.ResponseRecorder {
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", "sec")
	req.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, req)
	return rec
}

// wantGrant checks a grant's status: 200, 400 (wrong password) or 429
// (with Retry-After retry seconds when retry > 0).
func (e *ltEnv) wantGrant(rec *httptest.ResponseRecorder, status, retry int, what string) {
	e.t.Helper()
	if rec.Code != status {
		e.t.Fatalf("%s: %d %s, want %d", what, rec.Code, rec.Body, status)
	}
	if status == http.StatusTooManyRequests && retry > 0 && rec.Header().Get("Retry-After") != strconv.Itoa(retry) {
		e.t.Fatalf("%s: Retry-After %q, want %d", what, rec.Header().Get("Retry-After"), retry)
	}
}

var ltHidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// ltLogin is a login page shown to one browser.
type ltLogin struct {
	cookie *http.Cookie
	fields url.Values
}

// loginPage opens /authorize from remote and returns its login form.
func (e *ltEnv) loginPage(remote string) ltLogin {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/authorize?response_type=code&client_id=app", nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("/authorize: %d %s", rec.Code, rec.Body)
	}
	p := ltLogin{fields: url.Values{}}
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			p.cookie = c
		}
	}
	for _, m := range ltHidden.FindAllStringSubmatch(rec.Body.String(), -1) {
		p.fields.Set(m[1], html.UnescapeString(m[2]))
	}
	if p.cookie == nil || p.fields.Get("request_id") == "" {
		e.t.Fatalf("login page without cookie or request id:\n%s", rec.Body)
	}
	return p
}

// loginRequest is the login form post of p.
func (e *ltEnv) loginRequest(p ltLogin, remote, username, password string) *http.Request {
	f := url.Values{}
	for k, v := range p.fields {
		f[k] = v
	}
	f.Set("username", username)
	f.Set("password", password)
	req := httptest.NewRequest(http.MethodPost, "/authorize/login", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(p.cookie)
	req.RemoteAddr = remote
	return req
}

// login posts p's form from remote through h (the public handler unless
// given).
func (e *ltEnv) login(p ltLogin, remote, username, password string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, e.loginRequest(p, remote, username, password))
	return rec
}

// wantLogin checks the login post's answer: 200 is the consent page, 401
// the form again, 429 the form with the wait.
func (e *ltEnv) wantLogin(rec *httptest.ResponseRecorder, status int, what string) {
	e.t.Helper()
	want := map[int]string{http.StatusOK: "wants to access your account", http.StatusUnauthorized: "Incorrect username or password",
		http.StatusTooManyRequests: "Too many failed sign-in attempts"}[status]
	if rec.Code != status || !strings.Contains(rec.Body.String(), want) {
		e.t.Fatalf("%s: %d, want %d with %q:\n%s", what, rec.Code, status, want, rec.Body)
	}
}

// metric reads a tokend_login_* counter with kind from /metrics.
func (e *ltEnv) metric(name, kind string) float64 {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	m := regexp.MustCompile(`(?m)^` + name + `\{kind="` + kind + `"\} (\S+)$`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		e.t.Fatalf("/metrics has no %s{kind=%q}", name, kind)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// Wrong passwords for other users from one address, more of them than the
// per-user allowance, do not lock out a user who then signs in from that
// address with the right password: not on the password grant, not on the
// login page (failures on either count for both).
func TestLoginGhostFailuresDoNotLockOutVictim(t *testing.T) {
	e := newLTEnv(t)
	const addr = "192.0.2.7:5000"
	for i := 1; i <= 2*userFreeFailures; i++ {
		e.wantGrant(e.grant(addr, fmt.Sprintf("ghost%d", i), "guess"), http.StatusBadRequest, 0, "ghost grant")
	}
	e.wantGrant(e.grant(addr, "victim", "victim-pw"), http.StatusOK, 0, "victim after ghost failures")

	p := e.loginPage(addr)
	for i := 1; i <= 2*userFreeFailures; i++ {
		e.wantLogin(e.login(p, addr, fmt.Sprintf("phantom%d", i), "guess"), http.StatusUnauthorized, "phantom login")
	}
	e.wantLogin(e.login(p, addr, "victim", "victim-pw"), http.StatusOK, "victim's login after phantom failures")
	if n := e.metric("tokend_login_lockouts_total", "address"); n != 0 {
		t.Errorf("%d address lock-outs after %d failures", int(n), 4*userFreeFailures)
	}
}

// A user's own failures hold back that user alone, from any address, for
// a wait that starts at 1 s, doubles and stops at 30 s, and lapses
// without any waiting beyond it; a success clears it. Every lock-out is
// counted and logged without the username or the password.
func TestLoginUserBackoff(t *testing.T) {
	e := newLTEnv(t)
	const addr, other = "192.0.2.8:5000", "198.51.100.9:6000"
	p := e.loginPage(addr)
	// The login page and the grant share the count.
	for i := 0; i < userFreeFailures; i++ {
		if i%2 == 0 {
			e.wantLogin(e.login(p, addr, "victim", "wrong-"+strconv.Itoa(i)), http.StatusUnauthorized, "wrong password")
		} else {
			e.wantGrant(e.grant(addr, "victim", "wrong-"+strconv.Itoa(i)), http.StatusBadRequest, 0, "wrong password")
		}
	}
	e.wantGrant(e.grant(addr, "victim", "victim-pw"), http.StatusTooManyRequests, 1, "victim right after the lock-out")
	e.wantGrant(e.grant(other, "victim", "victim-pw"), http.StatusTooManyRequests, 1, "victim from another address")
	e.wantLogin(e.login(p, addr, "victim", "victim-pw"), http.StatusTooManyRequests, "victim's login during the lock-out")
	e.wantGrant(e.grant(addr, "bob", "bob-pw"), http.StatusOK, 0, "another user from the same address")
	e.clock.Add(time.Second)
	e.wantGrant(e.grant(addr, "victim", "victim-pw"), http.StatusOK, 0, "victim after 1 s")

	// The success cleared the count; keep failing, waiting out each
	// backoff: 1, 2, 4, 8, 16 s, then 30 s from then on.
	for i := 0; i < userFreeFailures; i++ {
		e.wantGrant(e.grant(addr, "victim", "wrong"), http.StatusBadRequest, 0, "wrong password")
	}
	for _, wait := range []int{1, 2, 4, 8, 16, 30, 30, 30} {
		e.wantGrant(e.grant(other, "victim", "victim-pw"), http.StatusTooManyRequests, wait, "victim during the backoff")
		e.clock.Add(time.Duration(wait)*time.Second - time.Millisecond)
		e.wantGrant(e.grant(other, "victim", "victim-pw"), http.StatusTooManyRequests, 1, "victim a millisecond early")
		e.clock.Add(time.Millisecond)
		e.wantGrant(e.grant(addr, "victim", "wrong"), http.StatusBadRequest, 0, "wrong password after the wait")
	}
	e.clock.Add(userMaxBackoff)
	e.wantGrant(e.grant(addr, "victim", "victim-pw"), http.StatusOK, 0, "victim after the capped backoff")

	if got, want := e.metric("tokend_login_lockouts_total", "user"), float64(1+8+1); got != want {
		t.Errorf("user lock-outs: %v, want %v", got, want)
	}
	if got := e.metric("tokend_login_throttled_total", "user"); got < 3 {
		t.Errorf("user throttled: %v, want at least 3", got)
	}
	if got := e.metric("tokend_login_lockouts_total", "address"); got != 0 {
		t.Errorf("address lock-outs: %v, want 0", got)
	}
	logs := e.log()
	uk := userKey("default", "victim")
	want := fmt.Sprintf("user_key=%x", uk[:8])
	if !strings.Contains(logs, "sign-in lock-out") || !strings.Contains(logs, want) || !strings.Contains(logs, "remote_addr=192.0.2.8") {
		t.Errorf("lock-out log lacks the message, %s or the address:\n%s", want, logs)
	}
	for _, secret := range []string{"victim", "wrong", "-pw"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}

// One address may fail addrBudget times, for any users, before it is
// refused (right password or not) for addrBlock; other addresses are not
// affected; the budget then refills at addrBudget per addrWindow.
func TestLoginAddressBudget(t *testing.T) {
	e := newLTEnv(t)
	const addr, other = "192.0.2.9:5000", "192.0.2.10:5000"
	for i := 0; i < addrBudget; i++ {
		e.wantGrant(e.grant(addr, fmt.Sprintf("ghost%d", i), "guess"), http.StatusBadRequest, 0, fmt.Sprintf("ghost failure %d", i+1))
	}
	rec := e.grant(addr, "victim", "victim-pw")
	e.wantGrant(rec, http.StatusTooManyRequests, int(addrBlock/time.Second), "victim from the address that spent its budget")
	if !strings.Contains(rec.Body.String(), "from this address") {
		t.Errorf("429 does not say the address is the reason: %s", rec.Body)
	}
	e.wantLogin(e.login(e.loginPage(addr), addr, "bob", "bob-pw"), http.StatusTooManyRequests, "bob's login from that address")
	e.wantGrant(e.grant(other, "victim", "victim-pw"), http.StatusOK, 0, "victim from another address")
	if got := e.metric("tokend_login_lockouts_total", "address"); got != 1 {
		t.Errorf("address lock-outs: %v, want 1", got)
	}
	if got := e.metric("tokend_login_throttled_total", "address"); got != 2 {
		t.Errorf("address throttled: %v, want 2", got)
	}
	if logs := e.log(); !strings.Contains(logs, "kind=address remote_addr=192.0.2.9 ") {
		t.Errorf("no address lock-out logged:\n%s", logs)
	}
	e.clock.Add(addrBlock)
	e.wantGrant(e.grant(addr, "victim", "victim-pw"), http.StatusOK, 0, "victim after the block")
	// The bucket has drained by addrBlock's worth of failures; the next
	// ones spend it again.
	refill := int(addrBlock / (addrWindow / addrBudget))
	for i := 0; i < refill; i++ {
		e.wantGrant(e.grant(addr, fmt.Sprintf("late-ghost%d", i), "guess"), http.StatusBadRequest, 0, "failure after the block")
	}
	e.wantGrant(e.grant(addr, "bob", "bob-pw"), http.StatusTooManyRequests, int(addrBlock/time.Second), "bob once the refill is spent")
	if got := e.metric("tokend_login_lockouts_total", "address"); got != 2 {
		t.Errorf("address lock-outs: %v, want 2", got)
	}
}

// A flood of failures for fresh usernames, several times the limiter's
// table, does not reset the count of a user attacked meanwhile: the table
// drops the least recently failed keys, not everything.
func TestLimiterFloodKeepsUserUnderAttack(t *testing.T) {
	e := newLTEnv(t)
	const table = 16
	e.s.limiter.users = newLRUTable(table)
	e.s.limiter.addrs = newLRUTable(table)
	for i := 0; i < userFreeFailures; i++ {
		e.wantGrant(e.grant("192.0.2.1:1", "victim", "wrong"), http.StatusBadRequest, 0, "victim's wrong password")
	}
	failures := userFreeFailures
	for round := 0; round < 4; round++ {
		for i := 0; i < table*3/4; i++ {
			remote := fmt.Sprintf("203.0.113.%d:1", round*table+i)
			e.wantGrant(e.grant(remote, fmt.Sprintf("fresh-%d-%d", round, i), "x"), http.StatusBadRequest, 0, "fresh key")
		}
		e.clock.Add(userMaxBackoff)
		e.wantGrant(e.grant("192.0.2.1:1", "victim", "wrong"), http.StatusBadRequest, 0, "victim's wrong password")
		failures++
	}
	if n := e.s.limiter.users.len(); n > table {
		t.Errorf("user table holds %d keys, bound %d", n, table)
	}
	want := int(e.s.limiter.userBackoff(failures) / time.Second)
	e.wantGrant(e.grant("192.0.2.1:1", "victim", "victim-pw"), http.StatusTooManyRequests, want,
		fmt.Sprintf("victim after %d failures amid %d fresh keys", failures, 4*table*3/4))
}

func TestLimiterKeys(t *testing.T) {
	if userKey("a", "b/c") == userKey("a/b", "c") || userKey("ab", "c") == userKey("a", "bc") {
		t.Error("user keys of different tenant/username splits collide")
	}
	same := [][2]string{
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"fe80::1%eth0", "fe80::2"},
	}
	for _, p := range same {
		if addrKey(p[0]) != addrKey(p[1]) {
			t.Errorf("addrKey(%s) != addrKey(%s)", p[0], p[1])
		}
	}
	differ := [][2]string{
		{"192.0.2.1", "192.0.2.2"},
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"pipe", "192.0.2.1"},
		{"pipe", "@"},
	}
	for _, p := range differ {
		if addrKey(p[0]) == addrKey(p[1]) {
			t.Errorf("addrKey(%s) == addrKey(%s)", p[0], p[1])
		}
	}

	// The table drops the least recently touched key when full.
	tb := newLRUTable(3)
	k := func(i byte) limitKey { return limitKey{i} }
	tb.touch(k(1))
	tb.touch(k(2))
	tb.touch(k(3))
	tb.touch(k(1)) // 2 is now the oldest
	tb.touch(k(4))
	if tb.get(k(2)) != nil || tb.get(k(1)) == nil || tb.get(k(3)) == nil || tb.get(k(4)) == nil || tb.len() != 3 {
		t.Errorf("after touching 1,2,3,1,4 in a table of 3: 1:%v 2:%v 3:%v 4:%v", tb.get(k(1)) != nil, tb.get(k(2)) != nil,
			tb.get(k(3)) != nil, tb.get(k(4)) != nil)
	}
	tb.expire(func(e *limitEntry) bool { return e.key != k(4) })
	if tb.len() != 1 || tb.get(k(4)) == nil {
		t.Errorf("expire left %d keys", tb.len())
	}
	tb.remove(k(4))
	if tb.len() != 0 || tb.head != nil || tb.tail != nil {
		t.Error("table not empty after removing its last key")
	}
}

// A sign-in handed off from another node counts against the client
// address the forwarding node sent, not the forwarding node's own
// address; only the hand-off handler reads that header, so a browser
// cannot choose its address on the public listener.
func TestLoginHandOffCountsOriginalClient(t *testing.T) {
	e := newLTEnv(t)
	e.s.limiter.addrBudget = 5                             // the policy's shape, at a test's size
	const node2 = "10.99.0.2:7000"                         // the forwarding node, over the internal port
	const client, other = "198.51.100.20", "198.51.100.21" // browsers behind node2
	handOff := func(p ltLogin, clientAddr, username, password string) *httptest.ResponseRecorder {
		req := e.loginRequest(p, node2, username, password)
		req.Header.Set(handoffHeader, "n2")
		req.Header.Set(clientAddrHeader, clientAddr)
		rec := httptest.NewRecorder()
		e.s.HandOffHandler().ServeHTTP(rec, req)
		return rec
	}
	p := e.loginPage(client + ":1")
	for i := 0; i < 5; i++ {
		e.wantLogin(handOff(p, client, fmt.Sprintf("ghost%d", i), "guess"), http.StatusUnauthorized, "handed-off failure")
	}
	e.wantLogin(handOff(p, client, "victim", "victim-pw"), http.StatusTooManyRequests, "handed off from the blocked client")
	e.wantLogin(e.login(p, client+":2", "victim", "victim-pw"), http.StatusTooManyRequests, "the blocked client, directly")
	if logs := e.log(); !strings.Contains(logs, "remote_addr="+client+" ") {
		t.Errorf("the lock-out is not logged against %s:\n%s", client, logs)
	}

	// The public listener ignores the header: neither escaping a block
	// nor pinning failures on someone else.
	req := e.loginRequest(p, client+":3", "victim", "victim-pw")
	req.Header.Set(clientAddrHeader, other)
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, req)
	e.wantLogin(rec, http.StatusTooManyRequests, "the blocked client claiming another address")
	q := e.loginPage("203.0.113.30:1")
	req = e.loginRequest(q, "203.0.113.30:1", "victim", "victim-pw")
	req.Header.Set(clientAddrHeader, client)
	rec = httptest.NewRecorder()
	e.s.ServeHTTP(rec, req)
	e.wantLogin(rec, http.StatusOK, "another browser claiming the blocked address")

	// node2 itself was charged nothing: another of its clients signs in.
	e.wantLogin(handOff(e.loginPage(other+":1"), other, "victim", "victim-pw"), http.StatusOK, "handed off from another client")
}

// The forwarding side: a login post for a sign-in another node owns is
// handed to it with the client address this node resolved (through its
// trusted proxies), whatever the browser put in that header.
func TestHandOffSendsClientAddr(t *testing.T) {
	trusted, _ := ParseTrustedProxies([]string{"10.0.0.0/8"})
	var got *http.Request
	e := newLTEnv(t, func(c *Config) {
		c.NodeID = "n2"
		c.TrustedProxies = trusted
		c.HandOff = func(_ context.Context, owner string, r *http.Request) (*http.Response, error) {
			if owner != "n1" {
				t.Errorf("handed to %q", owner)
			}
			got = r
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok"))}, nil
		}
	})
	form := url.Values{"request_id": {newSecret("") + "." + hex.EncodeToString([]byte("n1"))}, "csrf_token": {"x"},
		"username": {"victim"}, "password": {"pw"}}
	for _, rw := range []struct {
		remote, xff, want string
	}{
		{"10.0.0.5:1", "198.51.100.20", "198.51.100.20"}, // behind a trusted proxy
		{"192.0.2.5:1", "198.51.100.20", "192.0.2.5"},    // not a proxy: the peer
		{"[2001:db8::7]:1", "", "2001:db8::7"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/authorize/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(clientAddrHeader, "203.0.113.66") // the browser's own try
		if rw.xff != "" {
			req.Header.Set("X-Forwarded-For", rw.xff)
		}
		req.RemoteAddr = rw.remote
		got = nil
		rec := httptest.NewRecorder()
		e.s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || got == nil {
			t.Fatalf("from %s: %d %s, handed off: %v", rw.remote, rec.Code, rec.Body, got != nil)
		}
		if a := got.Header.Values(clientAddrHeader); len(a) != 1 || a[0] != rw.want {
			t.Errorf("from %s (X-Forwarded-For %q): %s %q, want %q", rw.remote, rw.xff, clientAddrHeader, a, rw.want)
		}
	}
}
