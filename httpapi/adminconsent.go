package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/tokend/tokend/fsm"
)

// Remembered consent in the admin API (sso.go remembers it):
//
//	GET    /admin/users/{tenant}/{username}/consents/{client_id}  what the user approved for the client
//	DELETE /admin/users/{tenant}/{username}/consents/{client_id}  forget it: the next sign-in asks again
//
// Forgetting consent revokes nothing already issued (POST /admin/revoke
// does that); it only brings the consent page back.

func (s *Server) getConsent(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	scope, ok := s.fsm.Consent(v["tenant"], v["username"], v["client_id"])
	if !ok {
		return errorf(http.StatusNotFound, "not_found", "no remembered consent of this user for this client")
	}
	writeJSON(w, http.StatusOK, map[string]string{"tenant": v["tenant"], "username": v["username"], "client_id": v["client_id"], "scope": scope})
	return nil
}

func (s *Server) forgetConsent(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	res, err := s.apply(r.Context(), &fsm.ForgetConsent{Tenant: v["tenant"], Username: v["username"], ClientID: v["client_id"]})
	if err != nil {
		return err
	}
	if res.Outcome != fsm.OK {
		return errorf(http.StatusNotFound, "not_found", "no remembered consent of this user for this client")
	}
	writeJSON(w, http.StatusOK, map[string]bool{"forgotten": true})
	return nil
}
