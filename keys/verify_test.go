package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokend/tokend/fsm"
)

// TestJWKSContents: next, current and retired public keys, in that order,
// each with kid, alg and use "sig" and nothing private; the document is
// marshalled once per generation.
func TestJWKSContents(t *testing.T) {
	r, c := newReplica(), newClock()
	m := newTestManager(t, r, c, nil, ES256, RS256, EdDSA)
	ctx := context.Background()
	if _, err := m.Rotate(ctx); err != nil { // first keys
		t.Fatal(err)
	}
	c.advance(1e9)
	if _, err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	doc, err := m.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatal(err)
	}
	keys, _ := r.f.SigningKeys()
	if len(raw.Keys) != len(keys) || len(keys) != 9 {
		t.Fatalf("JWKS has %d keys, set %d, want 9", len(raw.Keys), len(keys))
	}
	wantKty := map[string]string{ES256: "EC", RS256: "RSA", EdDSA: "OKP"}
	rank := map[fsm.KeyState]int{fsm.KeyNext: 0, fsm.KeyCurrent: 1, fsm.KeyRetired: 2}
	last := 0
	for _, jk := range raw.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := jk[private]; ok {
				t.Fatalf("JWKS key %v carries private member %q", jk["kid"], private)
			}
		}
		var k *fsm.SigningKey
		for i := range keys {
			if keys[i].ID == jk["kid"] {
				k = &keys[i]
			}
		}
		if k == nil {
			t.Fatalf("JWKS key %v is not in the set", jk["kid"])
		}
		if jk["use"] != "sig" || jk["alg"] != k.Alg || jk["kty"] != wantKty[k.Alg] {
			t.Fatalf("JWKS key %v: use %v alg %v kty %v", jk["kid"], jk["use"], jk["alg"], jk["kty"])
		}
		if rank[k.State] < last {
			t.Fatalf("JWKS order: a %v key after a later state", k.State)
		}
		last = rank[k.State]
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil || len(set.Keys) != 9 {
		t.Fatalf("go-jose reads %d keys: %v", len(set.Keys), err)
	}
	again, _ := m.JWKS(ctx)
	if &again[0] != &doc[0] {
		t.Fatal("JWKS marshalled again for the same generation")
	}
}

// forge builds a compact JWS with the given header, payload and
// signature function.
func forge(t *testing.T, hdr map[string]any, payload string, sign func(input []byte) []byte) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

// TestVerifyRefusesForgeries: alg none, HMAC keyed with the public key
// (its JWK, its PEM, its DER), an unknown kid, a kid of another
// algorithm, a wrong typ, a changed payload: all refused; the genuine
// token passes.
func TestVerifyRefusesForgeries(t *testing.T) {
	r, c := newReplica(), newClock()
	m := newTestManager(t, r, c, nil, ES256, RS256)
	ctx := context.Background()
	good, err := m.Sign(ctx, "at+jwt", map[string]any{"sub": "alice", "scope": "read"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(good, "at+jwt"); err != nil {
		t.Fatalf("genuine token refused: %v", err)
	}
	if _, err := m.Verify(good, "AT+JWT"); err != nil {
		t.Fatalf("typ compared case-sensitively: %v", err)
	}
	kid := header(t, good)["kid"].(string)
	v, _ := m.load()
	pub := v.public[kid]
	pubJWK, _ := json.Marshal(pub)
	der, _ := x509.MarshalPKIXPublicKey(pub.Key)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs256 := func(secret []byte) func([]byte) []byte {
		return func(in []byte) []byte { h := hmac.New(sha256.New, secret); h.Write(in); return h.Sum(nil) }
	}
	payload := `{"sub":"mallory","scope":"admin"}`
	var rsaKid string
	set, _ := r.f.SigningKeys()
	for _, k := range set {
		if k.Alg == RS256 && k.State == fsm.KeyCurrent {
			rsaKid = k.ID
		}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: other},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "not-a-key-of-the-set"))
	otherJWS, _ := otherSigner.Sign([]byte(payload))
	unknownKid, _ := otherJWS.CompactSerialize()
	otherWithOurKid, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: other},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	stolenKidJWS, _ := otherWithOurKid.Sign([]byte(payload))
	stolenKid, _ := stolenKidJWS.CompactSerialize()
	parts := strings.Split(good, ".")
	changed := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + parts[2]

	cases := map[string]struct{ token, typ string }{
		"alg none":              {forge(t, map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}, payload, func([]byte) []byte { return nil }), "at+jwt"},
		"alg none no kid":       {forge(t, map[string]any{"alg": "none", "typ": "at+jwt"}, payload, func([]byte) []byte { return nil }), "at+jwt"},
		"HS256 with JWK":        {forge(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}, payload, hs256(pubJWK)), "at+jwt"},
		"HS256 with PEM":        {forge(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}, payload, hs256(pemBytes)), "at+jwt"},
		"HS256 with DER":        {forge(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}, payload, hs256(der)), "at+jwt"},
		"unknown kid":           {unknownKid, "at+jwt"},
		"our kid, other key":    {stolenKid, "at+jwt"},
		"RS256 header, EC kid":  {forge(t, map[string]any{"alg": "RS256", "kid": kid, "typ": "at+jwt"}, payload, func(in []byte) []byte { return make([]byte, 256) }), "at+jwt"},
		"ES256 header, RSA kid": {forge(t, map[string]any{"alg": "ES256", "kid": rsaKid, "typ": "at+jwt"}, payload, func(in []byte) []byte { return make([]byte, 64) }), "at+jwt"},
		"wrong typ":             {good, "JWT"},
		"changed payload":       {changed, "at+jwt"},
		"not a JWS":             {"not.a.jws", "at+jwt"},
	}
	for name, tc := range cases {
		p, err := m.Verify(tc.token, tc.typ)
		if !errors.Is(err, ErrInvalidToken) || p != nil {
			t.Errorf("%s: Verify = %q, %v; want ErrInvalidToken", name, p, err)
		}
	}
	// An ID token is not an access token, and the other way round.
	id, _ := m.Sign(ctx, "JWT", map[string]any{"sub": "alice"})
	if _, err := m.Verify(id, "at+jwt"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("ID token accepted as at+jwt: %v", err)
	}
}
