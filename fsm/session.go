package fsm

import "time"

// Sign-in sessions: what a browser's session cookie stands for, replicated
// so that single sign-on and RP-initiated logout work on every node. The
// state holds only the SHA-256 of the cookie value (the session id, SID),
// like every other secret. Sessions live under FSM.mu, indexed by SID and
// by user, so deleting a user ends all of theirs.

// Session is one sign-in of a user.
type Session struct {
	Tenant, Username string
	AuthTime         int64 // when the user authenticated, unix seconds
	ExpiresAt        int64 // unix nanoseconds
}

// StartSession records a sign-in. SID is HashOf(the raw cookie value). The
// user must exist (NotFound); a zero SID is Invalid, one already held is
// Exists.
type StartSession struct {
	SID              Hash
	Tenant, Username string
	AuthTime         int64 // unix seconds
	ExpiresAt        int64 // unix nanoseconds
}

// EndSession ends a sign-in (NotFound when there is none).
type EndSession struct{ SID Hash }

func (*StartSession) op() op { return opStartSession }
func (*EndSession) op() op   { return opEndSession }

func (c *StartSession) encode(e *encoder) {
	e.hash(c.SID)
	e.string(c.Tenant)
	e.string(c.Username)
	e.varint(c.AuthTime)
	e.varint(c.ExpiresAt)
}

func (c *StartSession) decode(d *decoder) {
	c.SID = d.hash()
	c.Tenant, c.Username = d.string(), d.string()
	c.AuthTime, c.ExpiresAt = d.varint(), d.varint()
}

func (c *EndSession) encode(e *encoder) { e.hash(c.SID) }
func (c *EndSession) decode(d *decoder) { c.SID = d.hash() }

// Session returns the sign-in with session id sid if it has not ended or
// expired (by this node's clock; sessions are read, never decided, here).
// A deleted user's sessions are gone.
func (f *FSM) Session(sid Hash) (Session, bool) { return f.SessionAt(sid, time.Now().UnixNano()) }

// SessionAt is Session with the time given (unix nanoseconds).
func (f *FSM) SessionAt(sid Hash, now int64) (Session, bool) {
	f.mu.RLock()
	s, ok := f.sessions[sid]
	f.mu.RUnlock()
	if !ok || now >= s.ExpiresAt {
		return Session{}, false
	}
	return s, true
}

// UserSessions returns the session ids of the user's sign-ins (expired
// ones too, until a purge), for ending them all (EndSession each).
func (f *FSM) UserSessions(tenant, username string) []Hash {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Hash
	for sid := range f.userSessions[userKey{tenant, username}] {
		out = append(out, sid)
	}
	return out
}

// SessionCount is the number of sessions held (expired ones until a purge).
func (f *FSM) SessionCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.sessions)
}

func (f *FSM) startSession(c *StartSession) Result {
	if c.SID.IsZero() {
		return Result{Outcome: Invalid}
	}
	k := userKey{c.Tenant, c.Username}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[k]; !ok {
		return Result{Outcome: NotFound}
	}
	if _, ok := f.sessions[c.SID]; ok {
		return Result{Outcome: Exists}
	}
	f.addSession(c.SID, Session{Tenant: k.tenant, Username: k.username, AuthTime: c.AuthTime, ExpiresAt: c.ExpiresAt})
	return Result{}
}

// addSession indexes s (f.mu held, or f private to a restore).
func (f *FSM) addSession(sid Hash, s Session) {
	f.sessions[sid] = s
	k := userKey{s.Tenant, s.Username}
	set := f.userSessions[k]
	if set == nil {
		set = make(map[Hash]struct{})
		f.userSessions[k] = set
	}
	set[sid] = struct{}{}
}

func (f *FSM) endSession(c *EndSession) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dropSession(c.SID) {
		return Result{Outcome: NotFound}
	}
	return Result{}
}

// dropSession removes one session (f.mu held).
func (f *FSM) dropSession(sid Hash) bool {
	s, ok := f.sessions[sid]
	if !ok {
		return false
	}
	delete(f.sessions, sid)
	k := userKey{s.Tenant, s.Username}
	if set := f.userSessions[k]; set != nil {
		delete(set, sid)
		if len(set) == 0 {
			delete(f.userSessions, k)
		}
	}
	return true
}

// dropUserSessions ends every session of the user (f.mu held).
func (f *FSM) dropUserSessions(k userKey) {
	for sid := range f.userSessions[k] {
		delete(f.sessions, sid)
	}
	delete(f.userSessions, k)
}

// purgeSessions drops the sessions expired at now and returns how many.
// It looks for them under the read lock (the apply goroutine is the only
// writer), so readers wait only while expired ones are dropped.
func (f *FSM) purgeSessions(now int64) uint64 {
	var expired []Hash
	f.mu.RLock()
	for sid, s := range f.sessions {
		if now >= s.ExpiresAt {
			expired = append(expired, sid)
		}
	}
	f.mu.RUnlock()
	if len(expired) == 0 {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sid := range expired {
		f.dropSession(sid)
	}
	return uint64(len(expired))
}
