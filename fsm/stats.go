package fsm

// Stats counts what a state holds, without a single secret or hash: what
// tokend snapshot inspect prints, and what a restore checks an image by.
type Stats struct {
	Clients int `json:"clients"`
	Users   int `json:"users"`
	// Grants is every grant still held (a revoked grant is dropped with
	// its tokens).
	Grants int `json:"grants"`
	// Tokens is every record in the index, including rotated-out refresh
	// tokens and redeemed codes kept for reuse detection.
	Tokens int `json:"tokens"`
	// LiveAccess, LiveRefresh and LiveCodes are the tokens Lookup would
	// accept at the time Stats was given.
	LiveAccess  int `json:"live_access_tokens"`
	LiveRefresh int `json:"live_refresh_tokens"`
	LiveCodes   int `json:"live_codes"`
	// Consents, Sessions and SigningKeys count the OpenID Connect state
	// (sessions include expired ones not yet purged).
	Consents    int `json:"consents"`
	Sessions    int `json:"sessions"`
	SigningKeys int `json:"signing_keys"`
	// MaxGrantID is the highest grant id (the log index that created the
	// grant); an image whose applied index is lower is inconsistent.
	MaxGrantID uint64 `json:"-"`
}

// Stats counts f's contents, taking live to mean usable at now (unix
// nanoseconds). It reads tables the apply goroutine owns, so it is for a
// state nothing applies to: one just decoded from an image.
func (f *FSM) Stats(now int64) Stats {
	var s Stats
	f.mu.RLock()
	s.Clients, s.Users = len(f.clients), len(f.users)
	for _, m := range f.consents {
		s.Consents += len(m)
	}
	s.Sessions, s.SigningKeys = len(f.sessions), len(f.keys)
	f.mu.RUnlock()
	f.eachGrant(func(g *grant) {
		s.Grants++
		s.MaxGrantID = max(s.MaxGrantID, g.id)
	})
	f.tokens.each(func(_ key, r record) bool {
		s.Tokens++
		// lookupKey's test, on the record in hand.
		if r.state != stateActive || now >= r.expiresAt || r.grant.revoked.Load() {
			return true
		}
		switch r.kind {
		case KindAccess:
			s.LiveAccess++
		case KindRefresh:
			s.LiveRefresh++
		case KindCode:
			s.LiveCodes++
		}
		return true
	})
	return s
}
