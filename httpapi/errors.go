package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
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
// instead of "unknown client" (CONTRACT.md: writes and validations without
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
