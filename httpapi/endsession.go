package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokend/tokend/fsm"
)

// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0):
//
//	GET|POST /end_session  id_token_hint, post_logout_redirect_uri, state, client_id
//
// It ends the browser's sign-in session on every node (fsm.EndSession)
// and clears its cookie. The browser is sent back to
// post_logout_redirect_uri only when that URI is registered for the client
// exactly as given (fsm.Client.PostLogoutRedirectURIs) and the client is
// known: from id_token_hint, an ID token tokend signed (checked with the
// key set; it may have expired, as ID tokens usually have by the time the
// user signs out), or from client_id, which must then agree with it.
// Anything else shows the "signed out" page and redirects nowhere, so the
// endpoint is no open redirector.
//
// Without an id_token_hint nothing shows that the client asking is one
// the user signed in to, so a browser with a session is asked first
// (Core RP-Initiated Logout §2): a page whose form posts back with a
// logout_token derived from the session cookie, which another site can
// neither read nor compute, so it cannot sign a user out behind their back.

// maxIDTokenHint bounds id_token_hint: an RS256 ID token with every claim
// is well under it.
const maxIDTokenHint = 8192

func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	if s.unreadyPage(w, r) {
		return
	}
	params, err := queryOrForm(w, r)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Invalid sign-out request", describe(err))
		return
	}
	c, problem := s.logoutClient(params)
	if problem != "" {
		s.errorPage(w, r, http.StatusBadRequest, "Invalid sign-out request", problem)
		return
	}
	target := params.Get("post_logout_redirect_uri")
	if target != "" && (c == nil || !contains(c.PostLogoutRedirectURIs, target)) {
		s.errorPage(w, r, http.StatusBadRequest, "Invalid sign-out request",
			"The address the application asked to return to after signing out is not registered for it, so this server will not send you there.")
		return
	}
	if params.Get("id_token_hint") == "" && !logoutConfirmed(r, params) {
		s.render(w, r, s.pages.signOut, http.StatusOK, signOutData{
			Token: logoutToken(r), ClientID: params.Get("client_id"), Target: target, State: params.Get("state"),
			ClientName: clientName(c),
		}, logoutFormAction(target))
		return
	}
	if err := s.endSSO(r.Context(), w, r); err != nil {
		var ra retryAfter
		if errors.As(err, &ra) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ra.RetryAfter())))
		}
		s.log.WarnContext(r.Context(), "end session", "err", err)
		s.errorPage(w, r, http.StatusServiceUnavailable, "Try again in a moment",
			"This server cannot sign you out right now.")
		return
	}
	if target == "" {
		s.render(w, r, s.pages.signedOut, http.StatusOK, struct{ ClientName string }{clientName(c)}, selfOnly)
		return
	}
	logoutRedirect(w, r, target, params.Get("state"))
}

// logoutRedirect sends the browser to the registered post-logout URI.
func logoutRedirect(w http.ResponseWriter, r *http.Request, target, state string) {
	if st := state; st != "" && len(st) <= maxStateLen {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + url.Values{"state": {st}}.Encode()
	}
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Location", target)
	w.WriteHeader(status)
}

// logoutClient returns the client a logout request names (nil when none),
// or what is wrong with the request, for the error page.
func (s *Server) logoutClient(params url.Values) (*fsm.Client, string) {
	id := params.Get("client_id")
	if hint := params.Get("id_token_hint"); hint != "" {
		aud, ok := s.checkIDTokenHint(hint)
		switch {
		case !ok:
			return nil, "The application's ID token hint is not valid."
		case id != "" && id != aud:
			return nil, "The application's client_id does not match its ID token hint."
		}
		id = aud
	}
	if id == "" {
		return nil, ""
	}
	c, ok := s.fsm.Client(id)
	if !ok {
		return nil, "The application that sent you here is not registered with this server."
	}
	return c, ""
}

// checkIDTokenHint verifies an ID token this server signed, whatever its
// expiry, and returns its audience (the client).
func (s *Server) checkIDTokenHint(hint string) (string, bool) {
	if s.cfg.Signer == nil || len(hint) > maxIDTokenHint {
		return "", false
	}
	payload, err := s.cfg.Signer.Verify(hint, "JWT")
	if err != nil {
		return "", false
	}
	var c struct {
		Issuer   string          `json:"iss"`
		Audience json.RawMessage `json:"aud"`
		AZP      string          `json:"azp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Issuer != s.cfg.Issuer {
		return "", false
	}
	if c.AZP != "" {
		return c.AZP, true
	}
	var aud string
	if json.Unmarshal(c.Audience, &aud) == nil && aud != "" {
		return aud, true
	}
	var auds []string
	if json.Unmarshal(c.Audience, &auds) != nil || len(auds) != 1 {
		return "", false
	}
	return auds[0], true
}

// endSSO ends the browser's sign-in session, if it has one, and clears the
// cookie. A session that has already ended or expired is no error.
func (s *Server) endSSO(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	ck, err := r.Cookie(ssoCookie)
	if err != nil {
		return nil
	}
	if validSecret(ck.Value) {
		res, err := s.apply(ctx, &fsm.EndSession{SID: fsm.HashOf(ck.Value)})
		if err != nil {
			return fmt.Errorf("end sign-in session: %w", err)
		}
		if res.Outcome != fsm.OK && res.Outcome != fsm.NotFound {
			return fmt.Errorf("end sign-in session: %w", res.Err())
		}
	}
	s.setSSOCookie(w, "", 0)
	return nil
}

// signOutData fills templates/signout.html, the confirmation page.
type signOutData struct {
	Token, ClientID, Target, State, ClientName string
}

func clientName(c *fsm.Client) string {
	if c == nil {
		return ""
	}
	return c.Name
}

// logoutToken is the confirmation page's proof that a post comes from it:
// a hash of the session cookie under a label of its own (not the session
// id, which is in the replicated state). "" without a session.
func logoutToken(r *http.Request) string {
	ck, err := r.Cookie(ssoCookie)
	if err != nil || !validSecret(ck.Value) {
		return ""
	}
	sum := sha256.Sum256([]byte("tokend end_session\x00" + ck.Value))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// logoutConfirmed reports whether a logout without id_token_hint may go
// on: the browser has no session to end, or it posted the confirmation.
func logoutConfirmed(r *http.Request, params url.Values) bool {
	want := logoutToken(r)
	if want == "" {
		return true
	}
	got := params.Get("logout_token")
	return r.Method == http.MethodPost && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// logoutFormAction is the confirmation page's CSP form-action: its post
// may redirect to the post-logout URI.
func logoutFormAction(target string) string {
	if target == "" {
		return selfOnly
	}
	return consentFormAction(target)
}
