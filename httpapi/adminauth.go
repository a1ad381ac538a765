package httpapi

import (
	"container/list"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"sync"
	"time"
)

// The admin surface (/admin/*, /cluster/status, /debug/pprof/) is behind
// the admin bearer token. Failed presentations of a token are counted per
// client address; an address that fails adminFailLimit times within
// adminFailWindow is refused, right token or not, until adminFailWindow
// has passed, so the token cannot be guessed online at any useful rate.

// MinAdminTokenLen is the shortest admin token New accepts: 32 bytes of a
// random token are out of reach of guessing, throttled or not.
const MinAdminTokenLen = 32

const (
	adminFailLimit  = 10
	adminFailWindow = time.Minute
	// adminThrottleMaxKeys bounds the throttle's memory (about 400 bytes
	// an address); the least recently failing address goes first.
	adminThrottleMaxKeys = 10_000
)

// adminAuth checks the admin bearer token of every request to h, behind the
// per-address throttle. It does not check readiness: /cluster/status and
// pprof must answer on a node without a leader.
func (s *Server) adminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "admin API is disabled (no --admin-token)"))
			return
		}
		addr := throttleKey(s.originAddr(r)) // behind a trusted proxy, the real client
		if wait := s.adminThrottle.blocked(addr); wait > 0 {
			s.metrics.adminThrottled.Inc()
			s.writeError(w, r, &oauthError{Status: http.StatusTooManyRequests, Code: "temporarily_unavailable",
				Description: "too many failed admin authentications from this address; retry later", retry: wait})
			return
		}
		tok, ok := bearer(r)
		if !ok || !s.adminTokenMatches(tok) {
			// A request without credentials is not a guess and is not
			// counted: a poller not yet given the token should not lock
			// the operator's own address out.
			if r.Header.Get("Authorization") != "" {
				s.metrics.adminAuthFailures.Inc()
				if s.adminThrottle.fail(addr) {
					s.log.WarnContext(r.Context(), "admin authentication throttled: too many failed attempts",
						"remote_addr", addr, "failures", adminFailLimit, "window", adminFailWindow.String(),
						"blocked_for", adminFailWindow.String())
				}
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokend-admin"`)
			s.writeError(w, r, errorf(http.StatusUnauthorized, "invalid_token", "admin bearer token required"))
			return
		}
		s.adminThrottle.succeed(addr)
		next.ServeHTTP(w, r)
	})
}

// requireAdmin is adminAuth for the admin API proper, which reads and
// writes local state and so also answers 503 while this node is unready.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return s.adminAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.unready(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// adminTokenMatches compares digests rather than the tokens themselves, so
// the comparison takes the same time whatever the presented token's length
// (subtle.ConstantTimeCompare returns at once on a length mismatch).
func (s *Server) adminTokenMatches(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], s.adminDigest[:]) == 1
}

// throttleKey is the unit an address is throttled by: the IPv4 address, or
// the /64 of an IPv6 address (one host usually holds a whole /64, so
// per-address counting would be no limit at all).
func throttleKey(host string) string {
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// adminThrottle counts failed admin authentications per address in a
// sliding window. Entries are kept in least-recently-failed order and the
// oldest is dropped when the table is full, so memory stays bounded under
// a flood of fresh addresses; state is per node and in memory.
type adminThrottle struct {
	mu      sync.Mutex
	now     func() time.Time
	max     int
	entries map[string]*list.Element
	order   *list.List // of *throttleEntry, least recently failed first
}

type throttleEntry struct {
	key string
	// fails holds the times of the last adminFailLimit failures, a ring
	// written at n % adminFailLimit.
	fails        [adminFailLimit]time.Time
	n            int
	blockedUntil time.Time
}

func newAdminThrottle(now func() time.Time, max int) *adminThrottle {
	return &adminThrottle{now: now, max: max, entries: make(map[string]*list.Element), order: list.New()}
}

// blocked returns how long key must still wait, 0 if it may try.
func (t *adminThrottle) blocked(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	el := t.entries[key]
	if el == nil {
		return 0
	}
	e := el.Value.(*throttleEntry)
	if wait := e.blockedUntil.Sub(t.now()); wait > 0 {
		return wait
	}
	return 0
}

// fail records a failure for key and reports whether it starts a block:
// the adminFailLimit-th failure within adminFailWindow.
func (t *adminThrottle) fail(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	el := t.entries[key]
	if el == nil {
		for len(t.entries) >= t.max {
			oldest := t.order.Front()
			delete(t.entries, oldest.Value.(*throttleEntry).key)
			t.order.Remove(oldest)
		}
		el = t.order.PushBack(&throttleEntry{key: key})
		t.entries[key] = el
	} else {
		t.order.MoveToBack(el)
	}
	e := el.Value.(*throttleEntry)
	e.fails[e.n%adminFailLimit] = now
	e.n++
	// With the ring full, the slot written next holds the oldest of the
	// last adminFailLimit failures.
	if e.n >= adminFailLimit && now.Sub(e.fails[e.n%adminFailLimit]) < adminFailWindow {
		e.blockedUntil = now.Add(adminFailWindow)
		e.n = 0 // after the block the count starts afresh
		return true
	}
	return false
}

// succeed forgets key's failures, unless a block began meanwhile.
func (t *adminThrottle) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el := t.entries[key]; el != nil && !el.Value.(*throttleEntry).blockedUntil.After(t.now()) {
		delete(t.entries, key)
		t.order.Remove(el)
	}
}
