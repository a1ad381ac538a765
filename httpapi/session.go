package httpapi

import (
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"sync"
	"time"
)

// Login sessions.
//
// An authorization request that passed validation becomes an authSession
// held in this node's memory under a random request id. The login and
// consent forms carry the request id and a CSRF token in hidden fields; the
// browser carries a random binding value in a short-lived cookie. A form
// post is accepted only when all three match, so a page from another site
// cannot post the forms (it knows neither the request id nor the CSRF
// token) and a leaked request id is useless without the browser's cookie.
// The cookie is shared by all of a browser's pending requests, so two tabs
// can sign in to two applications at once.
//
// Sessions live on the node that created them; a post that reaches
// another node of a cluster is handed to the owner (handoff.go), so no
// session affinity is needed. Only the authorization code, issued through
// Raft, has to be visible everywhere.
//
// The store is bounded: sessions expire after sessionTTL, finished ones are
// deleted, and when maxSessions are pending the oldest is dropped, so a
// flood of /authorize requests costs bounded memory and only ever evicts
// the flood's own oldest entries first.

const (
	sessionCookie = "tokend_authz"
	sessionTTL    = 10 * time.Minute
	maxSessions   = 10_000
)

// authRequest is a validated authorization request.
type authRequest struct {
	clientID     string
	redirectURI  string // the effective one: as given, or the single registered one
	responseType string // "code", "token", "id_token", "id_token token" or "code id_token"
	scope        string // resolved against the client's registration
	state        string
	tenant       string      // as named by tenant_id; "" when not named
	challenge    string      // PKCE S256 challenge, "" when none
	prefix       string      // "" or "/oauth": which path family the browser uses
	oidc         oidcRequest // OpenID Connect parameters (oidcauthz.go)
}

// fragment reports whether responses go in the URL fragment (implicit).
func (a *authRequest) fragment() bool {
	switch a.responseType {
	case "token", "id_token", "id_token token", "code id_token":
		return true
	}
	return false
}

// usesCode reports whether the response carries a code (the code flow,
// or OpenID's hybrid "code id_token").
func (a *authRequest) usesCode() bool {
	return a.responseType == "code" || a.responseType == "code id_token"
}

// grants are the grant types the client must be registered for: the
// hybrid flow's ID token leaves through the front channel like the
// implicit flow's, so it needs both.
func (a *authRequest) grants() []string {
	switch a.responseType {
	case "code":
		return []string{"authorization_code"}
	case "code id_token":
		return []string{"authorization_code", "implicit"}
	}
	return []string{"implicit"}
}

type authSession struct {
	id      string // request id, in the forms' hidden request_id field
	browser string // the cookie value this request is bound to
	csrf    string
	req     authRequest
	expires time.Time
	// Set once the user has signed in; authTime is when the password was
	// checked (unix seconds), the ID token's auth_time.
	username, tenant string
	authTime         int64
}

// signInSessions is this node's store of pending sign-ins, held by Server.
type signInSessions struct {
	owner string // "." + hex(node id) appended to request ids; see handoff.go
	mu    sync.Mutex
	m     map[string]*authSession
	order []*authSession // creation order == expiry order
	head  int
	max   int
	ttl   time.Duration
}

// newSignInSessions returns an empty store; nodeID, when set, is appended
// (hex-encoded) to request ids so any node can tell the owner (handoff.go).
func newSignInSessions(max int, ttl time.Duration, nodeID string) *signInSessions {
	st := &signInSessions{m: make(map[string]*authSession), max: max, ttl: ttl}
	if nodeID != "" {
		st.owner = "." + hex.EncodeToString([]byte(nodeID))
	}
	return st
}

// create stores a new session for req bound to browser.
func (st *signInSessions) create(now time.Time, browser string, req authRequest) *authSession {
	sess := &authSession{
		id:      newSecret("") + st.owner,
		browser: browser,
		csrf:    newSecret(""),
		req:     req,
		expires: now.Add(st.ttl),
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// Drop expired sessions, finished ones at the front, and the oldest
	// while full.
	for st.head < len(st.order) {
		old := st.order[st.head]
		cur, live := st.m[old.id]
		live = live && cur == old
		if live && now.Before(old.expires) && len(st.m) < st.max {
			break
		}
		if live {
			delete(st.m, old.id)
		}
		st.order[st.head] = nil
		st.head++
	}
	if st.head > 1024 && st.head*2 > len(st.order) {
		st.order = append(st.order[:0:0], st.order[st.head:]...)
		st.head = 0
	}
	st.m[sess.id] = sess
	st.order = append(st.order, sess)
	return sess
}

// get returns a copy of a live session by request id.
func (st *signInSessions) get(now time.Time, id string) (authSession, bool) {
	if id == "" {
		return authSession{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	sess, ok := st.m[id]
	if !ok || !now.Before(sess.expires) {
		return authSession{}, false
	}
	return *sess, true
}

// signIn records the signed-in user and rotates the CSRF token, returning
// the new one; false when the session is gone.
func (st *signInSessions) signIn(id, username, tenant string, authTime int64) (string, bool) {
	csrf := newSecret("")
	st.mu.Lock()
	defer st.mu.Unlock()
	sess, ok := st.m[id]
	if !ok {
		return "", false
	}
	sess.username, sess.tenant, sess.csrf, sess.authTime = username, tenant, csrf, authTime
	return csrf, true
}

// take removes the session and reports whether it was still there, so two
// concurrent consent posts finish it exactly once.
func (st *signInSessions) take(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.m[id]; ok {
		delete(st.m, id)
		return true
	}
	return false
}

// browserID returns the browser's binding cookie value, minting and
// setting a new one when it has none (or one that is not ours).
func (s *Server) browserID(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(sessionCookie); err == nil && validSecret(c.Value) {
		s.setSessionCookie(w, c.Value) // extend it
		return c.Value
	}
	id := newSecret("")
	s.setSessionCookie(w, id)
	return id
}

func (s *Server) setSessionCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     "/",
		MaxAge:   int(sessionTTL / time.Second),
		HttpOnly: true,
		Secure:   s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// validSecret reports whether v looks like a value newSecret("") made.
func validSecret(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := tokenEncoding.DecodeString(v)
	return err == nil
}

// checkBinding verifies that a form post comes from the browser the
// session was created for and carries the session's CSRF token.
func checkBinding(r *http.Request, sess authSession, csrf string) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	okCookie := subtle.ConstantTimeCompare([]byte(c.Value), []byte(sess.browser)) == 1
	okCSRF := subtle.ConstantTimeCompare([]byte(csrf), []byte(sess.csrf)) == 1
	return okCookie && okCSRF
}
