package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend/fsm"
)

// oauthError is an RFC 6749 §5.2 error response. Every JSON error tokend
// writes, OAuth or admin, has this shape.
type oauthError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// basic asks for a WWW-Authenticate: Basic challenge (failed Basic
	// client authentication, RFC 6749 §5.2).
	basic bool
	// retry, when positive, is sent as Retry-After (rate limiting).
	retry time.Duration
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errorf(status int, code, desc string) *oauthError {
	return &oauthError{Status: status, Code: code, Description: desc}
}

func invalidRequest(desc string) *oauthError {
	return errorf(http.StatusBadRequest, "invalid_request", desc)
}

// retryAfter is implemented by consensus errors that mean "not now": no
// leader, no read lease, forwarding failed.
type retryAfter interface{ RetryAfter() time.Duration }

// writeJSON writes v with status. Responses that carry credentials must set
// Cache-Control: no-store themselves before calling.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// unready answers 503 with Retry-After and reports true when this node
// may not serve from local state right now (no leader, no read lease, still
// catching up). Every handler that reads local state before acting — client
// authentication included — asks first, so a lagging node says "later"
// instead of "unknown client" (docs/API.md: writes and validations without
// a lease get 503).
func (s *Server) unready(w http.ResponseWriter, r *http.Request) bool {
	err := s.rep.ReadReady()
	if err == nil {
		return false
	}
	s.writeError(w, r, err)
	return true
}

// writeError writes err as a JSON error. Consensus unavailability becomes
// 503 with Retry-After; anything unexpected becomes a 500 whose details go
// to the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthError
	var ra retryAfter
	switch {
	case errors.As(err, &oe):
	case errors.As(err, &ra):
		oe = errorf(http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		oe.retry = ra.RetryAfter()
	default:
		s.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		oe = errorf(http.StatusInternalServerError, "server_error", "internal error")
	}
	if oe.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(oe.retry)))
	}
	if oe.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokend", charset="UTF-8"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, oe.Status, oe)
}

// errorHandler is a handler that returns its error instead of writing it:
// serveErrors writes it, so every handler written this way (token, revoke,
// the admin API) answers errors through writeError alone.
type errorHandler func(http.ResponseWriter, *http.Request) error

func (s *Server) serveErrors(h errorHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// subject is what an fsm command acted on, which decides the HTTP error
// its refusal becomes.
type subject uint8

const (
	aClient     subject = iota // admin API: a client registration
	aUser                      // admin API: a user
	newGrant                   // token endpoint: IssueGrant
	aRefresh                   // token endpoint: RotateRefresh
	aCode                      // token endpoint: RedeemCode
	aRevocation                // /revoke and /admin/revoke: RevokeToken, RevokeClient, RevokeSubject
)

// outcomeError is the one mapping from fsm outcomes to HTTP errors: nil
// for OK. The admin API answers about entities: Exists is 409
// already_exists and any other refusal 404 not_found. The token endpoint
// answers RFC 6749 §5.2: every refusal is 400 invalid_grant, except a
// refresh asking for more scope than its grant (invalid_scope).
// Revocations always succeed (RFC 7009 §2.2: an unknown token, or another
// client's, is not an error).
func outcomeError(res fsm.Result, about subject) error {
	if res.Outcome == fsm.OK || about == aRevocation {
		return nil
	}
	switch about {
	case aClient, aUser:
		name := "client"
		if about == aUser {
			name = "user"
		}
		if res.Outcome == fsm.Exists {
			return errorf(http.StatusConflict, "already_exists", name+" already exists")
		}
		return errorf(http.StatusNotFound, "not_found", "no such "+name)
	case aRefresh, aCode:
		ref, ok := grantRefusals[about][res.Outcome]
		if !ok {
			ref = grantRefusals[about][fsm.NotFound]
		}
		return errorf(http.StatusBadRequest, ref.code, ref.desc)
	}
	return errorf(http.StatusBadRequest, "invalid_grant", "grant could not be issued: "+res.Err().Error())
}

// grantRefusals are the token endpoint's answers to a refused refresh or
// code redemption; an outcome not listed is answered as NotFound.
var grantRefusals = map[subject]map[fsm.Outcome]struct{ code, desc string }{
	aRefresh: {
		fsm.Mismatch: {"invalid_scope", "scope exceeds the original grant"},
		fsm.Reused:   {"invalid_grant", "refresh token was already used; the grant has been revoked"},
		fsm.NotFound: {"invalid_grant", "refresh token is invalid, expired or revoked"},
	},
	aCode: {
		fsm.Reused:   {"invalid_grant", "authorization code was already used; tokens issued with it are revoked"},
		fsm.Mismatch: {"invalid_grant", "redirect_uri or code_verifier does not match the authorization request"},
		fsm.NotFound: {"invalid_grant", "authorization code is invalid or expired"},
	},
}
