package bench

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// fakeStore is the state of a fake tokend used by the tests: just enough of
// the contract (admin API, /token for three grants, /validate, /introspect,
// /revoke, /readyz) to drive every scenario without the real server.
type fakeStore struct {
	mu      sync.Mutex
	admin   string
	clients map[string]string    // id -> secret
	users   map[string]string    // tenant/username -> password
	access  map[string]time.Time // token -> time it becomes visible
	refresh map[string]bool
	lag     time.Duration // how long after issue/revoke a *lagging* node still answers the old way
	revoked map[string]time.Time
}

func newFakeStore(admin string) *fakeStore {
	return &fakeStore{
		admin: admin, clients: map[string]string{}, users: map[string]string{},
		access: map[string]time.Time{}, refresh: map[string]bool{}, revoked: map[string]time.Time{},
	}
}

func fakeToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// fakeNode serves the store. A lagging node sees writes only after the
// store's lag, which is how the visibility tests provoke stale answers.
type fakeNode struct {
	s       *fakeStore
	lagging bool
}

func (n *fakeNode) valid(tok string) bool {
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	issued, ok := s.access[tok]
	if !ok {
		return false
	}
	if n.lagging && now.Sub(issued) < s.lag {
		return false
	}
	if rv, ok := s.revoked[tok]; ok {
		return n.lagging && now.Sub(rv) < s.lag
	}
	return true
}

func (n *fakeNode) clientOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok {
		return false
	}
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	return n.s.clients[id] == secret && secret != ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := n.s
	switch r.URL.Path {
	case "/readyz", "/healthz":
		w.WriteHeader(200)
	case "/admin/clients", "/admin/users":
		if r.Header.Get("Authorization") != "Bearer "+s.admin {
			writeJSON(w, 401, map[string]string{"error": "unauthorized"})
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path == "/admin/clients" {
			id, secret := fakeToken("c_")[:24], fakeToken("")
			s.clients[id] = secret
			writeJSON(w, 201, map[string]any{"client_id": id, "client_secret": secret, "name": body["name"]})
			return
		}
		s.users[body["tenant"].(string)+"/"+body["username"].(string)] = body["password"].(string)
		writeJSON(w, 201, map[string]any{"tenant": body["tenant"], "username": body["username"]})
	case "/token":
		if !n.clientOK(r) {
			w.Header().Set("WWW-Authenticate", "Basic")
			writeJSON(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		_ = r.ParseForm()
		resp := map[string]any{"token_type": "bearer", "expires_in": 1800, "scope": "read"}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch r.Form.Get("grant_type") {
		case "client_credentials":
		case "password":
			if s.users[r.Form.Get("tenant_id")+"/"+r.Form.Get("username")] != r.Form.Get("password") {
				writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
				return
			}
			rt := fakeToken("rt_")
			s.refresh[rt] = true
			resp["refresh_token"] = rt
		case "refresh_token":
			old := r.Form.Get("refresh_token")
			if !s.refresh[old] {
				writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
				return
			}
			delete(s.refresh, old)
			rt := fakeToken("rt_")
			s.refresh[rt] = true
			resp["refresh_token"] = rt
		default:
			writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type"})
			return
		}
		at := fakeToken("at_")
		s.access[at] = time.Now()
		resp["access_token"] = at
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, 200, resp)
	case "/validate":
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !n.valid(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(401)
			return
		}
		h := w.Header()
		h.Set("X-Token-Subject", "sub")
		h.Set("X-Token-Client-Id", "client")
		h.Set("X-Token-Scope", "read")
		w.WriteHeader(200)
	case "/introspect":
		if !n.clientOK(r) {
			writeJSON(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		_ = r.ParseForm()
		writeJSON(w, 200, map[string]bool{"active": n.valid(r.Form.Get("token"))})
	case "/revoke":
		if !n.clientOK(r) {
			writeJSON(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		_ = r.ParseForm()
		s.mu.Lock()
		if _, ok := s.access[r.Form.Get("token")]; ok {
			s.revoked[r.Form.Get("token")] = time.Now()
		}
		s.mu.Unlock()
		w.WriteHeader(200)
	default:
		http.NotFound(w, r)
	}
}
