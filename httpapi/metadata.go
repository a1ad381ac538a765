package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
)

// Server metadata: RFC 8414 at /.well-known/oauth-authorization-server and,
// when OpenID Connect is on (Config.Signer), OpenID Connect Discovery 1.0
// at /.well-known/openid-configuration. Both are the same document, so
// they cannot disagree about the issuer or an endpoint; without a Signer
// the OpenID fields are left out and the OpenID path answers 404.

// metadata serves RFC 8414 authorization server metadata.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.metadataDoc(r.Context()))
}

// openIDConfiguration serves OpenID Connect Discovery 1.0 §4.
func (s *Server) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Signer == nil {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "OpenID Connect is not enabled on this server (it has no signing keys)"))
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.metadataDoc(r.Context()))
}

func (s *Server) metadataDoc(ctx context.Context) map[string]any {
	iss := s.cfg.Issuer
	authMethods := []string{"client_secret_basic", "client_secret_post", "none"}
	doc := map[string]any{
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
	}
	if s.cfg.Signer == nil {
		return doc
	}
	doc["response_types_supported"] = []string{"code", "token", "id_token", "id_token token", "code id_token"}
	doc["jwks_uri"] = iss + jwksPath
	doc["userinfo_endpoint"] = iss + "/userinfo"
	doc["end_session_endpoint"] = iss + "/end_session"
	doc["scopes_supported"] = oidcScopes
	doc["subject_types_supported"] = []string{"public"}
	doc["id_token_signing_alg_values_supported"] = s.signingAlgs(ctx)
	doc["claims_supported"] = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "c_hash", "azp",
		"tenant_id", "name", "preferred_username", "email", "email_verified"}
	doc["prompt_values_supported"] = []string{"none", "login", "consent", "select_account"}
	doc["claims_parameter_supported"] = false
	doc["request_parameter_supported"] = false
	doc["request_uri_parameter_supported"] = false
	return doc
}

// signingAlgs are the algorithms of the published keys, the one Sign uses
// first: a key set being rotated to another algorithm may already hold it.
func (s *Server) signingAlgs(ctx context.Context) []string {
	algs := []string{s.cfg.Signer.Alg()}
	doc, err := s.cfg.Signer.JWKS(ctx)
	if err != nil {
		return algs
	}
	var set struct {
		Keys []struct {
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if json.Unmarshal(doc, &set) != nil {
		return algs
	}
	for _, k := range set.Keys {
		if k.Alg != "" && !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	return algs
}
