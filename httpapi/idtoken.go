package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"time"

	"github.com/tokend/tokend/fsm"
)

// ID tokens (OpenID Connect Core 1.0 §2, §3.1.3.6, §3.2.2.10, §12.2).
//
// An ID token says who signed in, for which client, when, and in answer
// to which request (nonce). It is a JWT signed by Config.Signer with the
// cluster's replicated key set, so any node signs and every relying party
// checks it with the keys at jwks_uri. It is never an access token: it is
// not in the replicated token index, so /validate, /introspect and
// /userinfo refuse it like any unknown string.
//
// Everything an ID token says comes from the grant (client, tenant, user,
// scope, nonce, auth_time), which travels through Raft, so a code issued
// on one node is redeemed with its nonce on another. The user's profile
// and email claims go into the ID token only when no access token is
// issued with it (response_type=id_token); otherwise the client asks
// /userinfo with the access token (Core §5.4).

// idClaims is an ID token's payload.
type idClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	AuthTime int64  `json:"auth_time,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
	AtHash   string `json:"at_hash,omitempty"`
	CHash    string `json:"c_hash,omitempty"`
	AZP      string `json:"azp"`
	Tenant   string `json:"tenant_id,omitempty"`
	*userClaims
}

// userClaims are the standard claims the profile and email scopes
// release (Core §5.1, §5.4), in the ID token or from /userinfo.
type userClaims struct {
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// idSubject is what an ID token is about.
type idSubject struct {
	clientID, tenant, username string
	scope                      string // the grant's: which claims to release
	nonce                      string // "" on refresh (Core §12.2)
	authTime                   int64  // unix seconds; 0 when unknown
}

// subjectOfToken is the ID token subject of a looked-up token.
func subjectOfToken(t fsm.Token, withNonce bool) idSubject {
	sub := idSubject{clientID: t.ClientID, tenant: t.Tenant, username: t.Username, scope: t.Scope, authTime: t.AuthTime}
	if withNonce {
		sub.nonce = t.Nonce
	}
	return sub
}

// signIDToken signs an ID token for sub. access and code, when set, are
// the access token and code issued with it (at_hash, c_hash); withClaims
// puts the profile and email claims in, for a response after which no
// access token is issued.
func (s *Server) signIDToken(ctx context.Context, sub idSubject, access, code string, withClaims bool) (string, error) {
	if s.cfg.Signer == nil {
		return "", fmt.Errorf("sign ID token: OpenID Connect is not enabled (no Signer)")
	}
	now := s.now()
	c := idClaims{
		Issuer: s.cfg.Issuer, Subject: sub.tenant + "/" + sub.username,
		Audience: sub.clientID, AZP: sub.clientID, Tenant: sub.tenant,
		IssuedAt: now.Unix(), Expiry: now.Add(s.idTokenTTL()).Unix(),
		AuthTime: sub.authTime, Nonce: sub.nonce,
	}
	if access != "" {
		c.AtHash = leftHalfHash(s.cfg.Signer.Alg(), access)
	}
	if code != "" {
		c.CHash = leftHalfHash(s.cfg.Signer.Alg(), code)
	}
	if withClaims {
		c.userClaims = s.userClaims(sub.tenant, sub.username, sub.scope)
	}
	tok, err := s.cfg.Signer.Sign(ctx, "JWT", c)
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	return tok, nil
}

func (s *Server) idTokenTTL() time.Duration {
	if s.cfg.IDTokenTTL > 0 {
		return s.cfg.IDTokenTTL
	}
	return s.cfg.AccessTTL
}

// userClaims returns the claims scope releases for a user, nil when it
// releases none or the user is gone.
func (s *Server) userClaims(tenant, username, scope string) *userClaims {
	profile, email := scopeHas(scope, "profile"), scopeHas(scope, "email")
	if !profile && !email {
		return nil
	}
	u, ok := s.fsm.User(tenant, username)
	if !ok {
		return nil
	}
	c := &userClaims{}
	if profile {
		c.Name, c.PreferredUsername = u.Name, u.PreferredUsername
		if c.PreferredUsername == "" {
			c.PreferredUsername = u.Username
		}
	}
	if email && u.Email != "" {
		verified := u.EmailVerified
		c.Email, c.EmailVerified = u.Email, &verified
	}
	return c
}

// leftHalfHash is at_hash and c_hash (Core §3.1.3.6): the left half of
// the hash of value with the hash function of the signing algorithm,
// base64url without padding. The choice of hash follows what relying
// parties check (EdDSA: SHA-512).
func leftHalfHash(alg, value string) string {
	var h hash.Hash
	switch alg {
	case "RS384", "ES384", "PS384":
		h = sha512.New384()
	case "RS512", "ES512", "PS512", "EdDSA":
		h = sha512.New()
	default: // RS256, ES256, PS256
		h = sha256.New()
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// idTokenForCode signs the ID token of a code redemption before the
// redemption is written, so a signing failure leaves the code unspent.
// It does nothing when the code is not an OpenID grant or not known here
// yet (idTokenAfter then signs once the redemption is applied).
func (s *Server) idTokenForCode(ctx context.Context, c *fsm.Client, code string, t *issued) error {
	if s.cfg.Signer == nil {
		return nil
	}
	tok, ok := s.fsm.Lookup(fsm.HashOf(code), s.now().UnixNano())
	if !ok || tok.Kind != fsm.KindCode || tok.ClientID != c.ID || tok.Username == "" || !scopeHas(tok.Scope, "openid") {
		return nil
	}
	idt, err := s.signIDToken(ctx, subjectOfToken(tok, true), t.access, "", false)
	if err != nil {
		return err
	}
	t.idToken = idt
	return nil
}

// idTokenAfter signs the ID token of an applied code redemption or
// refresh from the grant behind the new access token; withNonce is false
// for a refresh. It does nothing when scope has no openid, the ID token is
// already signed, or the grant is no OpenID sign-in (a password grant of a
// client that registered openid as a plain scope has no auth_time).
func (s *Server) idTokenAfter(ctx context.Context, t *issued, scope string, withNonce bool) error {
	if s.cfg.Signer == nil || t.idToken != "" || !scopeHas(scope, "openid") {
		return nil
	}
	tok, ok := s.fsm.Lookup(t.accessSpec.Hash, s.now().UnixNano())
	if !ok || tok.Username == "" || tok.AuthTime == 0 {
		return nil
	}
	sub := subjectOfToken(tok, withNonce)
	sub.scope = scope
	idt, err := s.signIDToken(ctx, sub, t.access, "", false)
	if err != nil {
		return err
	}
	t.idToken = idt
	return nil
}
