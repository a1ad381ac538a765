package fsm

import "strings"

// Consent memory: the scopes a user has approved for a client, so that a
// repeated sign-in skips the consent page (unless the client asks with
// prompt=consent). It lives beside the users and clients under FSM.mu and
// goes with either of them: deleting the user or the client forgets it.

// RememberConsent records that the user approved Scope (space-separated)
// for the client. What is stored is the union with what was remembered
// before, in the order first approved. The user and the client must exist
// (NotFound otherwise); a scope with no value in it changes nothing.
type RememberConsent struct{ Tenant, Username, ClientID, Scope string }

// ForgetConsent drops what the user approved for the client (NotFound when
// nothing was remembered).
type ForgetConsent struct{ Tenant, Username, ClientID string }

func (*RememberConsent) op() op { return opRememberConsent }
func (*ForgetConsent) op() op   { return opForgetConsent }

func (c *RememberConsent) encode(e *encoder) {
	e.string(c.Tenant)
	e.string(c.Username)
	e.string(c.ClientID)
	e.string(c.Scope)
}

func (c *RememberConsent) decode(d *decoder) {
	c.Tenant, c.Username, c.ClientID, c.Scope = d.string(), d.string(), d.string(), d.string()
}

func (c *ForgetConsent) encode(e *encoder) {
	e.string(c.Tenant)
	e.string(c.Username)
	e.string(c.ClientID)
}

func (c *ForgetConsent) decode(d *decoder) {
	c.Tenant, c.Username, c.ClientID = d.string(), d.string(), d.string()
}

// Consent returns the scope the user has approved for the client,
// space-separated, and whether anything is remembered.
func (f *FSM) Consent(tenant, username, clientID string) (scope string, ok bool) {
	f.mu.RLock()
	scope, ok = f.consents[userKey{tenant, username}][clientID]
	f.mu.RUnlock()
	return scope, ok
}

// ConsentCount is the number of remembered (user, client) consents.
func (f *FSM) ConsentCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, m := range f.consents {
		n += len(m)
	}
	return n
}

func (f *FSM) rememberConsent(c *RememberConsent) Result {
	k := userKey{c.Tenant, c.Username}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, user := f.users[k]
	_, client := f.clients[c.ClientID]
	if !user || !client {
		return Result{Outcome: NotFound}
	}
	scope := unionScope(f.consents[k][c.ClientID], c.Scope)
	if scope == "" {
		return Result{}
	}
	m := f.consents[k]
	if m == nil {
		m = make(map[string]string)
		f.consents[k] = m
	}
	m[c.ClientID] = scope
	return Result{}
}

func (f *FSM) forgetConsent(c *ForgetConsent) Result {
	k := userKey{c.Tenant, c.Username}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.consents[k]
	if _, ok := m[c.ClientID]; !ok {
		return Result{Outcome: NotFound}
	}
	delete(m, c.ClientID)
	if len(m) == 0 {
		delete(f.consents, k)
	}
	return Result{}
}

// forgetClientConsents drops every consent given to the client (f.mu held).
// It visits every user with a consent: deleting a client is rare.
func (f *FSM) forgetClientConsents(clientID string) {
	for k, m := range f.consents {
		delete(m, clientID)
		if len(m) == 0 {
			delete(f.consents, k)
		}
	}
}

// unionScope returns have followed by the values of add it lacks, each
// once, space-separated; empty values (runs of spaces) are dropped.
func unionScope(have, add string) string {
	var b strings.Builder
	seen := make(map[string]bool)
	for _, s := range []string{have, add} {
		for _, v := range strings.Fields(s) {
			if seen[v] {
				continue
			}
			seen[v] = true
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}
