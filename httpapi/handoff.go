package httpapi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

// Sign-in hand-off.
//
// The state between the login page and the consent page (session.go) lives
// on the node that showed the login page, because the consent step must be
// single-use and that is simplest to guarantee in one place. So that a load
// balancer need not keep a browser on one node, each request id ends with
// the owning node's id ("." + hex), and a login or consent post that reaches
// another node is proxied, body, cookie and all, to the owner's HTTP
// address. The owner then applies every check (CSRF token, cookie binding,
// single use, the per-user login limiter) as if the browser had come
// straight to it. A post for an owner that is gone fails as "expired", like
// any lost sign-in: the user starts again.
//
// The owner sees the forwarding node as the client address, so its
// per-address limiter counts handed-off attempts against that node; the
// per-user limit is unaffected.

// handoffHeader marks a proxied post so it is never proxied again.
const handoffHeader = "X-Tokend-Handoff"

// handOff proxies the form post to the node that owns its sign-in state
// and reports true when it did (or answered an error). On false the body
// has been buffered and put back for the local handler.
func (s *Server) handOff(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.PeerURL == nil || s.cfg.NodeID == "" || r.Header.Get(handoffHeader) != "" {
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		status := http.StatusBadRequest
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		s.errorPage(w, r, status, "Invalid request", "The form could not be read.")
		return true
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return false // the local handler explains
	}
	owner, ok := sessionOwner(vals.Get("request_id"))
	if !ok || owner == s.cfg.NodeID {
		return false
	}
	base, ok := s.cfg.PeerURL(owner)
	if !ok {
		return false
	}
	target, err := url.Parse(base)
	if err != nil {
		return false
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set(handoffHeader, s.cfg.NodeID)
			pr.Out.ContentLength = int64(len(body))
			pr.Out.Header.Set("Content-Length", strconv.Itoa(len(body)))
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.WarnContext(r.Context(), "sign-in hand-off failed", "owner", owner, "err", err)
			s.expiredPage(w, r)
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}

// sessionOwner extracts the node id a request id names.
func sessionOwner(requestID string) (string, bool) {
	i := strings.LastIndexByte(requestID, '.')
	if i < 0 {
		return "", false
	}
	id, err := hex.DecodeString(requestID[i+1:])
	if err != nil || len(id) == 0 {
		return "", false
	}
	return string(id), true
}
