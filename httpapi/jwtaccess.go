package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// JWT access tokens (RFC 9068), per client.
//
// A client registered with access_token_format "jwt" gets, from every flow
// that issues access tokens (the token endpoint's four grants and the
// implicit flow), a compact JWS signed through Config.Signer with header typ
// "at+jwt" instead of an opaque tkda- token. Resource servers may verify it
// offline with the JWKS alone.
//
// The JWT is still an entry of the replicated index like any opaque token:
// its index key is fsm.HashOf(the whole compact JWT), so it is signed first
// and the grant written after. /validate, /introspect, /revoke, the gateway
// fast path and revocation therefore need no change and no signature check
// on the hot path: the hash covers header, claims (jti included) and
// signature, so a forged token (alg none, HS256 keyed with the public key, an
// ID token, any changed claim) hashes to something that is not in the index
// and is refused like any unknown token, and a revoked JWT is refused on
// every node the moment /revoke returns, exactly like an opaque one.
//
// The claims name the grant's holder, which for a refresh or a code
// redemption is known only from the grant the presented token belongs to:
// that is read from local state (fsm.FSM.Holder) before the command is sent.
// A grant's client, tenant, user, scope and auth_time never change, and the
// effective scope of a refresh is the narrower one asked for when it asks
// (fsm's rotateRefresh), so what is signed is what the command records.

// Access token formats of fsm.Client.AccessTokenFormat.
const (
	formatOpaque = ""
	formatJWT    = "jwt"
)

// typAccessJWT is the JOSE typ header of RFC 9068 access tokens (§2.1).
const typAccessJWT = "at+jwt"

// maxTokenBytes is the form limit of the token parameter of /introspect and
// /revoke (form.go): room for an RS256 JWT with a long scope. Longer JWTs
// are not issued (signAccess), so every token tokend issues can be
// introspected and revoked.
const maxTokenBytes = 4096

// checkAccessTokenFormat validates a registration's access_token_format:
// "" and "opaque" mean opaque (stored as ""), "jwt" needs a Signer.
func (s *Server) checkAccessTokenFormat(format string) (string, error) {
	switch format {
	case formatOpaque, "opaque":
		return formatOpaque, nil
	case formatJWT:
		if s.cfg.Signer == nil {
			return "", invalidRequest("access_token_format jwt needs signing keys, and this server has none (no signer configured)")
		}
		return formatJWT, nil
	}
	return "", invalidRequest(`access_token_format must be "opaque" or "jwt", got ` + fmt.Sprintf("%q", format))
}

// viewAccessTokenFormat is the registration's format as the admin API shows
// it.
func viewAccessTokenFormat(c *fsm.Client) string {
	if c.AccessTokenFormat == formatJWT {
		return formatJWT
	}
	return "opaque"
}

// holder is what an access token's claims say about its grant.
type holder struct {
	tenant, username, scope string
	authTime                int64 // unix seconds; 0 when unknown
}

// accessClaims are the claims of a JWT access token (RFC 9068 §2.2) plus
// tokend's tenant. Marshalled by the Signer with encoding/json.
type accessClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	Tenant   string `json:"tenant_id,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
}

// mintFor mints the tokens of one response for client c: opaque ones, or,
// for a jwt client, a signed JWT access token about h whose hash is the
// index key (the refresh token stays opaque).
func (s *Server) mintFor(ctx context.Context, c *fsm.Client, h holder, withRefresh bool) (issued, error) {
	t := s.mint(withRefresh)
	if c.AccessTokenFormat != formatJWT {
		return t, nil
	}
	jwt, err := s.signAccess(ctx, c, h, t.now, t.accessSpec.ExpiresAt)
	if err != nil {
		return issued{}, err
	}
	t.access = jwt
	t.accessSpec.Hash = fsm.HashOf(jwt)
	return t, nil
}

// signAccess signs the at+jwt of one access token. Every failure is an
// OAuth error: a client registered for JWTs on a server without a signer is
// refused, and a signing failure is 503 (with the consensus error's own
// Retry-After when it is one), never a 500.
func (s *Server) signAccess(ctx context.Context, c *fsm.Client, h holder, now time.Time, expiresAt int64) (string, error) {
	if s.cfg.Signer == nil {
		return "", errorf(http.StatusBadRequest, "unauthorized_client",
			"the client is registered for JWT access tokens, and this server has no signing keys")
	}
	claims := accessClaims{
		Issuer: s.cfg.Issuer, Audience: c.ID, ClientID: c.ID,
		Subject: subjectOf(c.ID, h.tenant, h.username), Tenant: h.tenant, Scope: h.scope,
		IssuedAt: now.Unix(), Expiry: expiresAt / int64(time.Second), ID: newJTI(), AuthTime: h.authTime,
	}
	jwt, err := s.cfg.Signer.Sign(ctx, typAccessJWT, claims)
	if err != nil {
		var ra retryAfter
		if errors.As(err, &ra) {
			return "", fmt.Errorf("signing a JWT access token: %w", err)
		}
		s.log.ErrorContext(ctx, "signing a JWT access token", "client_id", c.ID, "err", err)
		return "", &oauthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
			Description: "the access token could not be signed; try again", retry: time.Second}
	}
	if len(jwt) > maxTokenBytes {
		return "", errorf(http.StatusBadRequest, "invalid_scope",
			fmt.Sprintf("the JWT access token would be %d bytes, over the %d-byte token limit; ask for a narrower scope", len(jwt), maxTokenBytes))
	}
	return jwt, nil
}

// subjectOf is the sub of a token: tenant/username for a user's grant, the
// client id for client_credentials (fsm.Token.Subject, which /validate and
// /introspect answer).
func subjectOf(clientID, tenant, username string) string {
	if username == "" {
		return clientID
	}
	return tenant + "/" + username
}

// newJTI returns 128 random bits, base64url.
func newJTI() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // never on supported platforms (secrets.go)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// presentedHolder reads, from local state, the grant behind a presented
// refresh token or code (hash h, of kind k) for client c, so that its JWT
// access token can be signed before the command is sent. An unknown
// token or one of a revoked grant is refused here exactly as the command
// would refuse it (it would change nothing); another client's token too.
// A superseded refresh token or a redeemed code is found, and the command
// then judges it (grace retry or reuse, which revokes the grant).
func (s *Server) presentedHolder(h fsm.Hash, k fsm.Kind, c *fsm.Client, about subject) (holder, error) {
	t, ok := s.fsm.Holder(h)
	if !ok || t.Kind != k || (k == fsm.KindRefresh && s.now().UnixNano() >= t.ExpiresAt) {
		return holder{}, outcomeError(fsm.Result{Outcome: fsm.NotFound}, about)
	}
	if t.ClientID != c.ID {
		return holder{}, outcomeError(fsm.Result{Outcome: fsm.WrongClient}, about)
	}
	return holder{tenant: t.Tenant, username: t.Username, scope: t.Scope, authTime: t.AuthTime}, nil
}

// mintRotation mints the tokens of a refresh for client c, presenting
// the refresh token old and asking for scope requested ("" for the
// grant's).
func (s *Server) mintRotation(ctx context.Context, c *fsm.Client, old, requested string) (issued, error) {
	if c.AccessTokenFormat != formatJWT {
		return s.mint(true), nil
	}
	h, err := s.presentedHolder(fsm.HashOf(old), fsm.KindRefresh, c, aRefresh)
	if err != nil {
		return issued{}, err
	}
	if requested != "" {
		h.scope = requested // the effective scope rotateRefresh records
	}
	return s.mintFor(ctx, c, h, true)
}

// mintRedemption mints the tokens of a code redemption for client c.
func (s *Server) mintRedemption(ctx context.Context, c *fsm.Client, code string) (issued, error) {
	withRefresh := c.HasGrant("refresh_token")
	if c.AccessTokenFormat != formatJWT {
		return s.mint(withRefresh), nil
	}
	h, err := s.presentedHolder(fsm.HashOf(code), fsm.KindCode, c, aCode)
	if err != nil {
		return issued{}, err
	}
	return s.mintFor(ctx, c, h, withRefresh)
}

// jwtID returns the jti claim of raw when it is a JWT tokend issued (the
// caller found its hash in the index, so its payload is ours and needs no
// signature check), else "". Opaque tokens cost one IndexByte.
func jwtID(raw string) string {
	first := strings.IndexByte(raw, '.')
	if first < 0 {
		return ""
	}
	payload, _, ok := strings.Cut(raw[first+1:], ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return ""
	}
	var c struct {
		ID string `json:"jti"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.ID
}
