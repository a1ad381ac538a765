package keys

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// ErrInvalidToken is what Verify's errors wrap: the token is not a JWS
// this key set signed with the expected typ.
var ErrInvalidToken = errors.New("keys: invalid token")

// Verify checks a compact JWS against the key set and its typ header, and
// returns the payload. Only the algorithms of keys in the set parse (so
// never "none" or an HMAC keyed with a public key), the kid must name a key
// of the set whose algorithm is the header's, and the signature must
// verify with that key. Expiry and the other claims are the caller's.
func (m *Manager) Verify(token, typ string) ([]byte, error) {
	v, err := m.load()
	if err != nil {
		return nil, err
	}
	if len(v.algs) == 0 {
		return nil, fmt.Errorf("%w: no signing keys yet", ErrInvalidToken)
	}
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrInvalidToken)
	}
	h := jws.Signatures[0].Protected
	key, ok := v.public[h.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: unknown key id", ErrInvalidToken)
	}
	if h.Algorithm != key.Algorithm {
		return nil, fmt.Errorf("%w: key %s is %s, not %s", ErrInvalidToken, h.KeyID, key.Algorithm, h.Algorithm)
	}
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); !typMatches(got, typ) {
		return nil, fmt.Errorf("%w: typ %q, want %q", ErrInvalidToken, got, typ)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return payload, nil
}

// typMatches compares a typ header with the expected one as media types
// (RFC 7515 §4.1.9): case-insensitively, with or without "application/".
func typMatches(got, want string) bool {
	got = strings.ToLower(got)
	want = strings.ToLower(want)
	return got == want || got == "application/"+want
}
