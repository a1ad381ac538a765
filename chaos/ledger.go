package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// revokeState is what the driver knows about a token's revocation.
type revokeState uint8

const (
	revokeNone    revokeState = iota // never attempted
	revokeStarted                    // a request is in flight
	revokeAcked                      // answered 200
	revokeUnknown                    // failed or timed out: may or may not have applied
)

// tokenRec is one token acknowledged as issued. The raw token lives only
// here, in memory; reports name a token by idx.
type tokenRec struct {
	idx      int
	tok      string
	revoke   revokeState
	revokeAt time.Time // when the revocation was acknowledged
}

// Pool sizes: revocations pick from the newest unrevoked tokens,
// validations from the newest tokens whatever their state.
const (
	poolSize   = 64
	recentSize = 128
	// maxDetails bounds the violation and unexpected-answer lines kept.
	maxDetails = 50
)

// ledger records every answer of the load and of the driver's own writes.
type ledger struct {
	mu         sync.Mutex
	toks       []*tokenRec
	pool       []*tokenRec // revoke candidates: revokeNone
	recent     []*tokenRec // validate candidates
	issues     int         // acknowledged issues
	revokes    int         // acknowledged revocations
	ops        int         // answered requests of the load, any answer
	classes    map[string]int
	stale      int
	details    []string
	unexpected []string
}

func newLedger() *ledger { return &ledger{classes: map[string]int{}} }

// acked is the number of acknowledged writes so far.
func (l *ledger) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.issues + l.revokes
}

func (l *ledger) addIssued(tok string) *tokenRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := &tokenRec{idx: len(l.toks), tok: tok}
	l.toks = append(l.toks, rec)
	l.issues++
	l.pool = pushBounded(l.pool, rec, poolSize)
	l.recent = pushBounded(l.recent, rec, recentSize)
	return rec
}

func pushBounded(s []*tokenRec, rec *tokenRec, n int) []*tokenRec {
	s = append(s, rec)
	if len(s) > n {
		s = append(s[:0], s[len(s)-n:]...)
	}
	return s
}

// takeForRevoke removes a random unrevoked token from the pool and marks
// its revocation started; nil when there is none.
func (l *ledger) takeForRevoke(rng *rand.Rand) *tokenRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pool) == 0 {
		return nil
	}
	i := rng.IntN(len(l.pool))
	rec := l.pool[i]
	l.pool = append(l.pool[:i], l.pool[i+1:]...)
	rec.revoke = revokeStarted
	return rec
}

func (l *ledger) revokeDone(rec *tokenRec, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		rec.revoke, rec.revokeAt = revokeAcked, time.Now()
		l.revokes++
		return
	}
	rec.revoke = revokeUnknown
}

// pickRecent returns a random recent token and whether its revocation was
// acknowledged already (then a 200 for it is stale).
func (l *ledger) pickRecent(rng *rand.Rand) (*tokenRec, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recent) == 0 {
		return nil, false
	}
	rec := l.recent[rng.IntN(len(l.recent))]
	return rec, rec.revoke == revokeAcked
}

// validated records a validation's answer and checks it against what was
// acknowledged: 200 after an acknowledged revocation, or 401 while no
// revocation was even started, is a stale read.
func (l *ledger) validated(nodeID string, rec *tokenRec, revokedBefore bool, code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case code == 200 && revokedBefore:
		l.stale++
		l.addDetail(fmt.Sprintf("stale read: token #%d validated 200 on %s after its revocation was acknowledged", rec.idx, nodeID))
	case code == 401 && rec.revoke == revokeNone:
		l.stale++
		l.addDetail(fmt.Sprintf("stale read: token #%d validated 401 on %s though acknowledged as issued and never revoked", rec.idx, nodeID))
	}
}

func (l *ledger) addDetail(s string) {
	if len(l.details) < maxDetails {
		l.details = append(l.details, s)
	}
}

// answer counts one request's outcome under its class ("issue 503",
// "validate refused"); unexpected marks answers the API never gives for a
// well-formed request under faults (anything but 2xx, 401 on a validation,
// 503 or a transport error), which are listed in the report.
func (l *ledger) answer(class string, unexpected bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops++
	l.classes[class]++
	if unexpected && len(l.unexpected) < maxDetails {
		l.unexpected = append(l.unexpected, class)
	}
}

// snapshot copies the tokens for the final check.
func (l *ledger) snapshot() []tokenRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]tokenRec, len(l.toks))
	for i, r := range l.toks {
		out[i] = *r
	}
	return out
}

// errorClasses lists the classes that are not successes, sorted, as
// "class=count".
func errorClasses(classes map[string]int) string {
	var out []string
	for k, v := range classes {
		if strings.HasSuffix(k, " ok") {
			continue
		}
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// counts returns the acknowledged issues and revocations.
func (l *ledger) counts() (issues, revokes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.issues, l.revokes
}

// report returns the answer classes, the unexpected answers and the stale
// reads.
func (l *ledger) report() (map[string]int, []string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	classes := make(map[string]int, len(l.classes))
	for k, v := range l.classes {
		classes[k] = v
	}
	return classes, append([]string(nil), l.unexpected...), l.stale
}

// violations lists the stale reads seen under load.
func (l *ledger) violations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.details...)
}
