package httpapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sign-in hand-off.
//
// The state between the login page and the consent page (session.go) lives
// on the node that showed the login page, because the consent step must be
// single-use and that is simplest to guarantee in one place. So that a load
// balancer need not keep a browser on one node, each request id ends with
// the owning node's id ("." + hex), and a login or consent post that reaches
// another node is handed, body, cookie and all, to the owner over the
// cluster's internal port (Config.HandOff: mutual TLS, never the public
// listener). The owner then applies every check (CSRF token, cookie
// binding, single use, the per-user login limiter) as if the browser had
// come straight to it. A post for an owner that is gone fails as
// "expired", like any lost sign-in: the user starts again.
//
// The forwarding node sends the client address it resolved (its peer, or
// the client its trusted proxies name; clientaddr.go) in
// X-Tokend-Client-Addr, and the owner's HandOffHandler, reachable only
// over the internal port, counts a failed sign-in against that address,
// exactly as if the browser had come straight to it. The public listener
// never reads the header.

// handoffHeader marks a handed-off post so it is never handed on again.
const handoffHeader = "X-Tokend-Handoff"

// handOffTimeout bounds a hand-off; the owner answers from memory.
const handOffTimeout = 10 * time.Second

// handOff sends the form post to the node that owns its sign-in state and
// reports true when it did (or answered an error). On false the body has
// been buffered and put back for the local handler.
func (s *Server) handOff(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.HandOff == nil || s.cfg.NodeID == "" || r.Header.Get(handoffHeader) != "" {
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
	ctx, cancel := context.WithTimeout(r.Context(), handOffTimeout)
	defer cancel()
	out := r.Clone(ctx)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	out.Header.Set(handoffHeader, s.cfg.NodeID)
	out.Header.Set(clientAddrHeader, s.originAddr(r))
	resp, err := s.cfg.HandOff(ctx, owner, out)
	if err != nil {
		s.log.WarnContext(r.Context(), "sign-in hand-off failed", "owner", owner, "err", err)
		s.expiredPage(w, r)
		return true
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
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

// HandOffHandler serves the sign-in posts other nodes hand to this one:
// the login and consent form posts and nothing else, so the internal port
// never becomes a second way into the rest of the API. A post counts
// against the client address the forwarding node sent.
func (s *Server) HandOffHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/oauth") {
		case "/authorize/login", "/authorize/consent":
			if r.Method == http.MethodPost && r.Header.Get(handoffHeader) != "" {
				s.ServeHTTP(w, withHandOffClient(r))
				return
			}
		}
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "not a sign-in hand-off"))
	})
}

// withHandOffClient returns r with the client address a forwarding node
// sent in its context (see originAddr); r itself when there is none or it
// is not an IP address, and then the sign-in counts against the peer.
func withHandOffClient(r *http.Request) *http.Request {
	a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get(clientAddrHeader)))
	if err != nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), clientAddrKey, a.Unmap()))
}
