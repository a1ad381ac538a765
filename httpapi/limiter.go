package httpapi

import (
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The login limiter slows password guessing on the login page and the
// password grant (checkUser in token.go applies it to both) with two
// independent policies, so that neither can be turned against users who
// did nothing wrong (README, "Brute-force protection"):
//
//   - Per user (tenant and username): userFreeFailures failures are free;
//     after that each failure makes the user wait, from 1 s doubling up to
//     userMaxBackoff. A success clears the count, and it is forgotten
//     userForget after the last failure. The wait is seconds, not minutes,
//     so guessing at someone's password keeps them out for half a minute
//     at worst, while a guesser gets about two tries a minute.
//   - Per client address (an IPv4 address or an IPv6 /64, from
//     Config.TrustedProxies when behind proxies): a budget of addrBudget
//     failures that refills evenly over addrWindow (a leaky bucket). An
//     address that exhausts it is refused, whoever it signs in as, for
//     addrBlock; then the refill lets it fail again at the budget's rate.
//     The budget is large, so an address shared by many people (a NAT, an
//     office) is not locked out by one of them mistyping, and failures for
//     other users never block a user's own sign-in, only an address's.
//
// Keys are fixed-size hashes, so a long username costs no more memory than
// a short one, and each policy's table holds at most limiterMaxKeys keys:
// when full, the least recently failed key is dropped, never the whole
// table, so a flood of fresh keys cannot reset the count of a user under
// attack. State is per node and in memory: an attacker spreading guesses
// over three nodes gets three budgets.
type loginLimiter struct {
	mu    sync.Mutex
	now   func() time.Time
	users *lruTable // a: last failure (unix ns); n: failures
	addrs *lruTable // a: the bucket's theoretical arrival time; b: blocked until

	userFree       int
	userMaxBackoff time.Duration
	userForget     time.Duration
	addrBudget     int
	addrWindow     time.Duration
	addrBlock      time.Duration

	// lockouts counts lock-outs started, throttled attempts refused, by
	// limitKind.
	lockouts, throttled *prometheus.CounterVec
}

const (
	userFreeFailures = 5
	userMaxBackoff   = 30 * time.Second
	userForget       = 15 * time.Minute
	addrBudget       = 100
	addrWindow       = 15 * time.Minute
	addrBlock        = time.Minute
	// limiterMaxKeys bounds each table (about 100 bytes a key).
	limiterMaxKeys = 50_000
)

func newLoginLimiter(now func() time.Time, reg prometheus.Registerer) (*loginLimiter, error) {
	l := &loginLimiter{
		now:            now,
		users:          newLRUTable(limiterMaxKeys),
		addrs:          newLRUTable(limiterMaxKeys),
		userFree:       userFreeFailures,
		userMaxBackoff: userMaxBackoff,
		userForget:     userForget,
		addrBudget:     addrBudget,
		addrWindow:     addrWindow,
		addrBlock:      addrBlock,
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_login_lockouts_total",
			Help: "Sign-in lock-outs started by failed passwords on the login page or the password grant: kind=user, a user's backoff; kind=address, an address's failure budget spent.",
		}, []string{"kind"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_login_throttled_total",
			Help: "Sign-in attempts refused with 429 during a lock-out, by the kind of lock-out.",
		}, []string{"kind"}),
	}
	for _, c := range []*prometheus.CounterVec{l.lockouts, l.throttled} {
		for _, k := range []limitKind{limitUser, limitAddr} {
			c.WithLabelValues(string(k))
		}
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// limitKey identifies a user or an address in the limiter's tables.
type limitKey [16]byte

// userKey is the first 16 bytes of SHA-256(tenant NUL username).
func userKey(tenant, username string) limitKey {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(username))
	var k limitKey
	copy(k[:], h.Sum(nil))
	return k
}

// addrKey is the 16-byte form of an IPv4 address or of an IPv6 address's
// /64 (one host usually holds a whole /64, so counting single IPv6
// addresses would be no limit at all); anything that is not an IP address
// is hashed.
func addrKey(addr string) limitKey {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		sum := sha256.Sum256([]byte("addr\x00" + addr))
		return limitKey(sum[:16])
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip.As16()
}

// limitKind names the policy that refused or locked out.
type limitKind string

const (
	limitUser limitKind = "user"
	limitAddr limitKind = "address"
)

// blocked returns how long a sign-in for user from addr must still wait
// and which policy holds it back; 0 when it may try.
func (l *loginLimiter) blocked(user, addr limitKey) (time.Duration, limitKind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().UnixNano()
	var wait int64
	var kind limitKind
	if e := l.users.get(user); e != nil && now-e.a <= int64(l.userForget) && int(e.n) >= l.userFree {
		if w := e.a + int64(l.userBackoff(int(e.n))) - now; w > 0 {
			wait, kind = w, limitUser
		}
	}
	if e := l.addrs.get(addr); e != nil {
		if w := e.b - now; w > wait {
			wait, kind = w, limitAddr
		}
	}
	return time.Duration(wait), kind
}

// userBackoff is the wait after a user's failures-th failure.
func (l *loginLimiter) userBackoff(failures int) time.Duration {
	if failures < l.userFree {
		return 0
	}
	return min(time.Second<<min(failures-l.userFree, 16), l.userMaxBackoff)
}

// lockout is a wait that a failure has just started.
type lockout struct {
	kind     limitKind
	wait     time.Duration
	failures int // the user's failures; for an address, the budget
}

// fail records a failed sign-in for user from addr and returns the
// lock-outs it starts: the user's, once past the free failures, and the
// address's, when it exhausts the budget.
func (l *loginLimiter) fail(user, addr limitKey) []lockout {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().UnixNano()
	var out []lockout

	l.users.expire(func(e *limitEntry) bool { return now-e.a > int64(l.userForget) })
	u := l.users.touch(user)
	if now-u.a > int64(l.userForget) {
		u.n = 0
	}
	u.n++
	u.a = now
	if d := l.userBackoff(int(u.n)); d > 0 {
		out = append(out, lockout{kind: limitUser, wait: d, failures: int(u.n)})
	}

	// A leaky bucket (GCRA): each failure adds interval to the bucket's
	// theoretical arrival time, which drains at one interval per
	// interval; more than addrWindow outstanding means the budget is
	// spent.
	interval := int64(l.addrWindow) / int64(l.addrBudget)
	l.addrs.expire(func(e *limitEntry) bool { return e.a <= now && e.b <= now })
	a := l.addrs.touch(addr)
	a.a = max(a.a, now) + interval
	if a.a-now > int64(l.addrWindow)-interval {
		a.b = now + int64(l.addrBlock)
		out = append(out, lockout{kind: limitAddr, wait: l.addrBlock, failures: l.addrBudget})
	}
	return out
}

// succeed clears user's failures. The address's are kept: a guesser with
// one account of its own must not be able to refill its budget.
func (l *loginLimiter) succeed(user limitKey) {
	l.mu.Lock()
	l.users.remove(user)
	l.mu.Unlock()
}

// lruTable is a bounded map of limiter entries in least-recently-touched
// order. It is not safe for concurrent use; loginLimiter locks it.
type lruTable struct {
	max        int
	m          map[limitKey]*limitEntry
	head, tail *limitEntry // head: least recently touched
}

type limitEntry struct {
	key        limitKey
	n          int32
	a, b       int64
	prev, next *limitEntry
}

func newLRUTable(max int) *lruTable {
	return &lruTable{max: max, m: make(map[limitKey]*limitEntry)}
}

func (t *lruTable) get(k limitKey) *limitEntry { return t.m[k] }

// touch returns k's entry, created zero if absent, as the most recently
// touched; creating one in a full table drops the least recently touched.
func (t *lruTable) touch(k limitKey) *limitEntry {
	if e := t.m[k]; e != nil {
		t.unlink(e)
		t.pushBack(e)
		return e
	}
	for len(t.m) >= t.max && t.head != nil {
		t.remove(t.head.key)
	}
	e := &limitEntry{key: k}
	t.m[k] = e
	t.pushBack(e)
	return e
}

// expire drops entries from the least recently touched end while done
// says they are over, so forgotten keys do not wait for the table to fill.
func (t *lruTable) expire(done func(*limitEntry) bool) {
	for t.head != nil && done(t.head) {
		t.remove(t.head.key)
	}
}

func (t *lruTable) remove(k limitKey) {
	if e := t.m[k]; e != nil {
		t.unlink(e)
		delete(t.m, k)
	}
}

func (t *lruTable) len() int { return len(t.m) }

func (t *lruTable) pushBack(e *limitEntry) {
	e.prev, e.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = e
	} else {
		t.head = e
	}
	t.tail = e
}

func (t *lruTable) unlink(e *limitEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
