package httpapi

import (
	"net/http"

	"github.com/tokend/tokend/fsm"
)

// revoke serves POST /revoke (RFC 7009). Any token, known or not, gets 200
// once the revocation has been applied everywhere reads are served; a token
// of another client is left alone without saying so.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if s.unready(w, r) {
		return
	}
	f, err := parseForm(w, r)
	if err == nil {
		err = s.revokeRequest(r, f)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revokeRequest(r *http.Request, f form) error {
	c, err := s.authenticateClient(r, f)
	if err != nil {
		return err
	}
	tok := f.get("token")
	if tok == "" {
		return invalidRequest("token is required")
	}
	switch f.get("token_type_hint") {
	case "", "access_token", "refresh_token":
	default:
		return errorf(http.StatusBadRequest, "unsupported_token_type", "token_type_hint must be access_token or refresh_token")
	}
	res, err := s.apply(r.Context(), &fsm.RevokeToken{Token: fsm.HashOf(tok), ClientID: c.ID})
	if err != nil {
		return err
	}
	return outcomeError(res, aRevocation)
}
