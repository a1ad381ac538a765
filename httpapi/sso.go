package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/tokend/tokend/fsm"
)

// Single sign-on for OpenID sign-ins.
//
// A successful password check on the login page of an OpenID request
// starts a sign-in session: a random value in the tokend_session cookie,
// of which only the SHA-256 (the session id) goes through Raft
// (fsm.StartSession), so every node knows the session and none can
// recreate the cookie from its state. A later OpenID request from the same
// browser then skips the login page on any node, and skips the consent
// page too when the user already approved the requested scopes for that
// client (fsm.RememberConsent), unless prompt, max_age, tenant_id or
// login_hint say otherwise. prompt=none answers without any page:
// login_required, consent_required or interaction_required go back to the
// client's redirect URI. RP-initiated logout (endsession.go) ends the
// session everywhere at once.

const (
	ssoCookie = "tokend_session"
	// ssoTTL is how long a sign-in lasts: a browser signs in again after
	// it, whatever it did meanwhile.
	ssoTTL = 12 * time.Hour
)

// signedIn is the user an authorization is issued for.
type signedIn struct {
	tenant, username string
	authTime         int64 // unix seconds
}

// ssoSession returns the browser's sign-in session if it may serve req.
// When it may not, the error code says why for prompt=none.
func (s *Server) ssoSession(r *http.Request, req authRequest) (signedIn, string) {
	o := req.oidc
	if !o.openid || o.login || o.maxAge == 0 {
		return signedIn{}, "login_required"
	}
	ck, err := r.Cookie(ssoCookie)
	if err != nil || !validSecret(ck.Value) {
		return signedIn{}, "login_required"
	}
	now := s.now()
	sess, ok := s.fsm.SessionAt(fsm.HashOf(ck.Value), now.UnixNano())
	switch {
	case !ok:
		return signedIn{}, "login_required"
	case o.maxAge > 0 && now.Unix()-sess.AuthTime > o.maxAge:
		return signedIn{}, "login_required"
	case req.tenant != "" && req.tenant != sess.Tenant,
		o.loginHint != "" && o.loginHint != sess.Username:
		// Signed in, but as someone else than the client asks for.
		return signedIn{}, "interaction_required"
	}
	return signedIn{tenant: sess.Tenant, username: sess.Username, authTime: sess.AuthTime}, ""
}

// resumeSignIn serves an authorization request from the browser's sign-in
// session, or answers prompt=none. It reports false when the login page
// is to be shown.
func (s *Server) resumeSignIn(w http.ResponseWriter, r *http.Request, c *fsm.Client, req authRequest) bool {
	u, why := s.ssoSession(r, req)
	if why != "" {
		if req.oidc.none {
			s.redirectError(w, r, req, why, "the user must sign in")
			return true
		}
		return false
	}
	if s.needConsent(c, req, u) {
		if req.oidc.none {
			s.redirectError(w, r, req, "consent_required", "the user has not approved this client for the requested scope")
			return true
		}
		sess := s.sessions.create(s.now(), s.browserID(w, r), req)
		csrf, ok := s.sessions.signIn(sess.id, u.username, u.tenant, u.authTime)
		if !ok {
			s.expiredPage(w, r)
			return true
		}
		s.consentPage(w, r, c, *sess, csrf, u, true)
		return true
	}
	s.issueAuthorization(w, r, c, req, u)
	return true
}

// needConsent reports whether the consent page must be shown: always for
// plain OAuth requests and with prompt=consent, else unless the user
// approved every requested scope for this client before.
func (s *Server) needConsent(c *fsm.Client, req authRequest, u signedIn) bool {
	if !req.oidc.openid || req.oidc.consent {
		return true
	}
	remembered, ok := s.fsm.Consent(u.tenant, u.username, c.ID)
	return !ok || !fsm.ScopeSubset(req.scope, remembered)
}

// loginFormAction is the login page's CSP form-action: an OpenID sign-in
// whose consent is remembered redirects to the client straight from the
// login post, and Chromium applies form-action to that redirect too.
func loginFormAction(req authRequest) string {
	if req.oidc.openid {
		return consentFormAction(req.redirectURI)
	}
	return selfOnly
}

// startSSO starts a sign-in session for u and sets its cookie.
func (s *Server) startSSO(ctx context.Context, w http.ResponseWriter, u signedIn) error {
	raw := newSecret("")
	res, err := s.apply(ctx, &fsm.StartSession{
		SID: fsm.HashOf(raw), Tenant: u.tenant, Username: u.username,
		AuthTime: u.authTime, ExpiresAt: s.now().Add(ssoTTL).UnixNano(),
	})
	if err != nil {
		return fmt.Errorf("start sign-in session: %w", err)
	}
	if res.Outcome != fsm.OK {
		return fmt.Errorf("start sign-in session: %w", res.Err())
	}
	s.setSSOCookie(w, raw, ssoTTL)
	return nil
}

// setSSOCookie sets (maxAge > 0) or clears the sign-in session cookie.
// SameSite=Lax: the browser sends it on the top-level navigation from a
// client to /authorize, never on a cross-site form post or subrequest.
func (s *Server) setSSOCookie(w http.ResponseWriter, value string, maxAge time.Duration) {
	secs := int(maxAge / time.Second)
	if maxAge <= 0 {
		secs = -1
	}
	http.SetCookie(w, &http.Cookie{
		Name: ssoCookie, Value: value, Path: "/", MaxAge: secs,
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// endUserSessions ends every sign-in session of the user, on every node:
// after a revocation of the user's grants or a new password, a browser
// that signed in before must not get new codes without the password.
// It returns how many it ended.
func (s *Server) endUserSessions(ctx context.Context, tenant, username string) (int, error) {
	n := 0
	for _, sid := range s.fsm.UserSessions(tenant, username) {
		res, err := s.apply(ctx, &fsm.EndSession{SID: sid})
		if err != nil {
			return n, fmt.Errorf("end the user's sign-in sessions: %w", err)
		}
		if res.Outcome == fsm.OK {
			n++
		}
	}
	return n, nil
}

// rememberConsent records that u approved scope for the client; a failure
// costs only a consent page next time, so it is logged, not shown.
func (s *Server) rememberConsent(ctx context.Context, u signedIn, clientID, scope string) {
	res, err := s.apply(ctx, &fsm.RememberConsent{Tenant: u.tenant, Username: u.username, ClientID: clientID, Scope: scope})
	if err == nil && res.Outcome != fsm.OK {
		err = res.Err()
	}
	if err != nil {
		s.log.WarnContext(ctx, "remember consent", "client_id", clientID, "err", err)
	}
}
