package httpapi

import "net/http"

// metadata serves RFC 8414 authorization server metadata.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	iss := s.cfg.Issuer
	authMethods := []string{"client_secret_basic", "client_secret_post", "none"}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/authorize",
		"token_endpoint":                                 iss + "/token",
		"revocation_endpoint":                            iss + "/revoke",
		"introspection_endpoint":                         iss + "/introspect",
		"response_types_supported":                       []string{"code", "token"},
		"response_modes_supported":                       []string{"query", "fragment"},
		"grant_types_supported":                          []string{"authorization_code", "implicit", "password", "client_credentials", "refresh_token"},
		"token_endpoint_auth_methods_supported":          authMethods,
		"revocation_endpoint_auth_methods_supported":     authMethods,
		"introspection_endpoint_auth_methods_supported":  []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
	})
}
