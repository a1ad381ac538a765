package httpapi

import "context"

// Signer signs and checks JWTs with the cluster's replicated key set
// (package keys). The HTTP layer never sees private keys: ID tokens
// (idtoken.go) and JWT access tokens are signed through it, and the
// OpenID discovery document advertises its algorithm and key set.
type Signer interface {
	// Sign returns a compact JWS of claims (marshalled with encoding/json) signed with the current key
	// of the default algorithm (ES256 unless configured), header typ = typ ("JWT" for ID tokens, "at+jwt"
	// for RFC 9068 access tokens) and kid. It creates the first keys through Raft when there are none.
	Sign(ctx context.Context, typ string, claims any) (string, error)
	// Alg is the algorithm Sign uses (for at_hash/c_hash: ES256/RS256 -> SHA-256 left half).
	Alg() string
	// JWKS returns the JSON Web Key Set document: public keys of the next, current and retired keys.
	JWKS(ctx context.Context) ([]byte, error)
	// Verify checks a compact JWS against the key set (only the algorithms of keys in the set; never
	// "none" or HMAC) and its typ header, and returns the payload. Expiry is the caller's business.
	Verify(token, typ string) ([]byte, error)
}
