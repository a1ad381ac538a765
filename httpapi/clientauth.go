package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tokend/tokend/fsm"
)

// authenticateClient identifies the calling client by HTTP Basic
// (client_secret_basic) or by client_id/client_secret in the body
// (client_secret_post); public clients send client_id alone. Using both
// methods at once is refused (RFC 6749 §2.3). A failure is invalid_client,
// 401, with a Basic challenge when Basic was tried.
func (s *Server) authenticateClient(r *http.Request, f form) (*fsm.Client, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		if f.has("client_secret") || (f.has("client_id") && f.get("client_id") != decodeBasic(id)) {
			return nil, invalidRequest("use one client authentication method")
		}
		// RFC 6749 §2.3.1: credentials are form-urlencoded before
		// being put in the Basic header.
		id, secret = decodeBasic(id), decodeBasic(secret)
		// The same limits as in the body (form.go), so the header is no
		// way around them. The comparison comes first so that only an
		// oversize header pays for building the error.
		if len(id) > basicIDLimit || len(secret) > basicSecretLimit {
			if err := checkFieldLimits(url.Values{"client_id": {id}, "client_secret": {secret}}); err != nil {
				return nil, err
			}
		}
	} else {
		id, secret = f.get("client_id"), f.get("client_secret")
		if id == "" {
			return nil, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client",
				Description: "client authentication required", basic: true}
		}
	}
	c, ok := s.fsm.Client(id)
	if !ok {
		// Hash anyway so unknown ids and wrong secrets take equal time.
		_ = fsm.HashOf(secret).Equal(fsm.Hash{})
		return nil, clientAuthFailed(basic)
	}
	if c.Public {
		if secret != "" {
			return nil, clientAuthFailed(basic)
		}
		return c, nil
	}
	// Client secrets are 256 random bits (newSecret), so one SHA-256,
	// not a slow password hash, is all their verification needs: there
	// is nothing to brute-force. That keeps this check at a fraction of
	// a microsecond and makes a verified-secret cache pointless.
	if secret == "" || !fsm.HashOf(secret).Equal(c.SecretHash) {
		return nil, clientAuthFailed(basic)
	}
	return c, nil
}

// clientAuthFailed is the answer to a wrong or unknown client: the same
// for both, so it tells nothing about which ids exist.
func clientAuthFailed(basic bool) *oauthError {
	return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client",
		Description: "client authentication failed", basic: basic}
}

// The body's limits on client_id and client_secret, for Basic credentials.
var (
	basicIDLimit     = fieldLimits["client_id"]
	basicSecretLimit = fieldLimits["client_secret"]
)

func decodeBasic(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if v, err := url.QueryUnescape(s); err == nil {
		return v
	}
	return s
}

// requireConfidential refuses public clients where a secret is essential.
func requireConfidential(c *fsm.Client) error {
	if c.Public {
		return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client",
			Description: "this endpoint requires a confidential client"}
	}
	return nil
}
