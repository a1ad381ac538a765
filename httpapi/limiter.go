package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// loginLimiter slows password guessing on the login form and the password
// grant. Each key (a user, a client address) may fail freeFailures times;
// after that it must wait an interval that doubles with every further
// failure, capped at maxLockout, so a real user is never locked out for
// long. A success clears the user's key. State is per node and in memory:
// an attacker spreading guesses over three nodes gets three budgets, which
// still bounds guessing to a few attempts per minute.
type loginLimiter struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]*attempts
}

type attempts struct {
	failures int
	last     time.Time
}

const (
	freeFailures   = 5
	maxLockout     = 5 * time.Minute
	forgetAfter    = 15 * time.Minute
	limiterMaxKeys = 100_000
)

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, entries: make(map[string]*attempts)}
}

// blocked returns how long the caller must still wait, 0 if it may try.
func (l *loginLimiter) blocked(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		a := l.entries[k]
		if a == nil || a.failures < freeFailures {
			continue
		}
		if w := a.last.Add(lockout(a.failures)).Sub(now); w > wait {
			wait = w
		}
	}
	return wait
}

func lockout(failures int) time.Duration {
	d := time.Second << min(failures-freeFailures, 16)
	return min(d, maxLockout)
}

func (l *loginLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.entries) >= limiterMaxKeys {
		l.sweep(now)
	}
	for _, k := range keys {
		a := l.entries[k]
		if a == nil || now.Sub(a.last) > forgetAfter {
			a = &attempts{}
			l.entries[k] = a
		}
		a.failures++
		a.last = now
	}
}

func (l *loginLimiter) succeed(key string) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// sweep drops forgotten entries; if that frees nothing (a flood of fresh
// keys) it starts over rather than grow without bound.
func (l *loginLimiter) sweep(now time.Time) {
	for k, a := range l.entries {
		if now.Sub(a.last) > forgetAfter {
			delete(l.entries, k)
		}
	}
	if len(l.entries) >= limiterMaxKeys {
		l.entries = make(map[string]*attempts)
	}
}

// clientAddr is the peer's IP. X-Forwarded-For is not trusted: tokend
// cannot know which proxies are its own.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
