package httpapi

import (
	"net/http"
	"time"

	"github.com/tokend/tokend/fsm"
)

type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Tenant    string `json:"tenant_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	JTI       string `json:"jti,omitempty"` // JWT access tokens (jwtaccess.go)
}

// introspect serves POST /introspect (RFC 7662) from local memory. Callers
// authenticate as confidential clients, and learn about a token only if it
// is their own or they are registered as a resource server (Introspect):
// anyone else gets {"active":false}, exactly as for an unknown token, so
// one client cannot read another's users and tenants (RFC 7662 §4).
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	// As s.unready does, with the fence that FinishRead checks after the
	// lookup.
	fence, err := s.rep.BeginRead()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.introspectRequest(w, r, fence)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header()["Cache-Control"] = headerNoStore
	buf := bodyPool.Get().(*[]byte)
	*buf = resp.appendJSON(*buf)
	writeBody(w, http.StatusOK, buf)
}

func (s *Server) introspectRequest(w http.ResponseWriter, r *http.Request, fence int64) (introspection, error) {
	f, err := parseForm(w, r)
	if err != nil {
		return introspection{}, err
	}
	c, err := s.authenticateClient(r, f)
	if err != nil {
		return introspection{}, err
	}
	if err := requireConfidential(c); err != nil {
		return introspection{}, err
	}
	raw := f.get("token")
	if raw == "" {
		return introspection{}, invalidRequest("token is required")
	}
	h := fsm.HashOf(raw)
	t, ok := s.fsm.Lookup(h, s.now().UnixNano())
	// After the lookup: what it saw must be visible on every node that
	// serves reads before it is told (Replicator.FinishRead).
	if err := s.rep.FinishRead(r.Context(), fence, s.fsm.InFlight(h)); err != nil {
		return introspection{}, err
	}
	if !ok || t.Kind == fsm.KindCode || (t.ClientID != c.ID && !c.Introspect) {
		return introspection{Active: false}, nil
	}
	return introspection{
		Active:    true,
		Scope:     t.Scope,
		ClientID:  t.ClientID,
		Username:  t.Username,
		Subject:   t.Subject(),
		Tenant:    t.Tenant,
		TokenType: t.Kind.String(),
		Exp:       t.ExpiresAt / int64(time.Second),
		Iat:       t.IssuedAt / int64(time.Second),
		Issuer:    s.cfg.Issuer,
		JTI:       jwtID(raw),
	}, nil
}

// appendJSON appends i as encoding/json would write it, newline included
// (jsonbody.go): introspection is a hot path, and reflection was a good
// part of its handler's cost.
func (i *introspection) appendJSON(b []byte) []byte {
	o := jsonObject{b: append(b, '{')}
	o.bool("active", i.Active)
	o.strOmit("scope", i.Scope)
	o.strOmit("client_id", i.ClientID)
	o.strOmit("username", i.Username)
	o.strOmit("sub", i.Subject)
	o.strOmit("tenant_id", i.Tenant)
	o.strOmit("token_type", i.TokenType)
	if i.Exp != 0 {
		o.int("exp", i.Exp)
	}
	if i.Iat != 0 {
		o.int("iat", i.Iat)
	}
	o.strOmit("iss", i.Issuer)
	o.strOmit("jti", i.JTI)
	return append(o.b, '}', '\n')
}
