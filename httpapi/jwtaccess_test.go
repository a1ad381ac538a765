package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
)

// Tests of RFC 9068 JWT access tokens (jwtaccess.go) over a real
// httpapi.Server with an in-process RS256 signer. Helpers carry a jat
// prefix so they cannot collide with other test files of the package.

// jatSigner is an httpapi.Signer over one RSA key, as keys.Manager signs:
// header alg, kid and typ, claims marshalled with encoding/json.
type jatSigner struct {
	key *rsa.PrivateKey
	kid string
}

func newJATSigner(t *testing.T) *jatSigner {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &jatSigner{key: k, kid: "jat-test-key"}
}

func (s *jatSigner) Sign(_ context.Context, typ string, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", s.kid)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.key}, opts)
	if err != nil {
		return "", err
	}
	jws, err := sig.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (s *jatSigner) Alg() string { return string(jose.RS256) }

func (s *jatSigner) JWKS(context.Context) ([]byte, error) {
	return json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: string(jose.RS256), Use: "sig"},
	}})
}

func (s *jatSigner) Verify(token, typ string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	if got, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); got != typ {
		return nil, errors.New("wrong typ")
	}
	return jws.Verify(&s.key.PublicKey)
}

// jatEnv is an azEnv with a signer, a user, and a JWT client registered
// for every grant but implicit.
type jatEnv struct {
	*azEnv
	signer *jatSigner
	jwt    azClient // access_token_format jwt
	rs     azClient // a resource server (introspect: true), opaque
}

const jatRedirect = "https://app.example/cb"

func newJATEnv(t *testing.T) *jatEnv {
	t.Helper()
	sg := newJATSigner(t)
	e := newAZEnv(t, nil, func(c *httpapi.Config) { c.Signer = sg; c.RefreshGrace = time.Minute })
	e.user("acme", "alice", "correct horse")
	env := &jatEnv{azEnv: e, signer: sg}
	env.jwt = env.register(map[string]any{
		"name": "jwt app", "redirect_uris": []string{jatRedirect}, "scopes": []string{"read", "write"},
		"grant_types":         []string{"authorization_code", "password", "client_credentials", "refresh_token"},
		"access_token_format": "jwt",
	}, http.StatusCreated)
	env.rs = env.register(map[string]any{"name": "rs", "grant_types": []string{"client_credentials"}, "introspect": true}, http.StatusCreated)
	return env
}

// register posts a registration and returns the client; with a status
// other than 201 it checks the refusal is a 4xx JSON error instead.
func (e *jatEnv) register(body map[string]any, want int) azClient {
	e.t.Helper()
	resp := e.admin(http.MethodPost, "/admin/clients", body)
	defer resp.Body.Close()
	var v struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Format       string `json:"access_token_format"`
		Error        string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	if resp.StatusCode != want {
		e.t.Fatalf("register %v: status %d (%s), want %d", body, resp.StatusCode, v.Error, want)
	}
	if want != http.StatusCreated {
		if v.Error != "invalid_request" {
			e.t.Fatalf("register %v: error %q, want invalid_request", body, v.Error)
		}
		return azClient{}
	}
	if f, _ := body["access_token_format"].(string); f == "jwt" && v.Format != "jwt" {
		e.t.Fatalf("registration answers access_token_format %q", v.Format)
	}
	return azClient{ID: v.ClientID, Secret: v.ClientSecret, Redirect: jatRedirect}
}

// token posts to /token as c and returns the status and decoded body.
func (e *jatEnv) token(c azClient, f url.Values) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.ID, c.Secret)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, v
}

func (e *jatEnv) issue(c azClient, f url.Values) map[string]any {
	e.t.Helper()
	st, v := e.token(c, f)
	if st != http.StatusOK {
		e.t.Fatalf("token %v: %d %v", f, st, v)
	}
	return v
}

func (e *jatEnv) revoke(c azClient, token string) {
	e.t.Helper()
	p := e.post(e.srv.Client(), "/revoke", url.Values{"token": {token}, "client_id": {c.ID}, "client_secret": {c.Secret}})
	if p.status != http.StatusOK {
		e.t.Fatalf("revoke: %d %s", p.status, p.body)
	}
}

// accessClaims are the claims an at+jwt must carry.
type accessClaims struct {
	josejwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Tenant   string `json:"tenant_id"`
	AuthTime int64  `json:"auth_time"`
}

// verifyAccess checks tok against the signer's JWKS as a resource server
// would offline: signature, typ at+jwt, iss, aud and time, and returns the
// claims.
func (e *jatEnv) verifyAccess(tok string) accessClaims {
	e.t.Helper()
	doc, err := e.signer.JWKS(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return verifyAccessJWKS(e.t, doc, tok, azIssuer)
}

func verifyAccessJWKS(t *testing.T, jwksDoc []byte, tok, issuer string) accessClaims {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksDoc, &set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("access token %q is not a JWS: %v", tok, err)
	}
	h := parsed.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		t.Fatalf("typ %q, want at+jwt", typ)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	var c accessClaims
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := c.Claims.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, AnyAudience: josejwt.Audience{c.ClientID}}, time.Minute); err != nil {
		t.Fatalf("claims %+v: %v", c, err)
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(c.ID); len(raw) != 16 {
		t.Fatalf("jti %q is not 128 bits", c.ID)
	}
	if c.IssuedAt == nil || c.Expiry == nil || c.ClientID == "" || c.Subject == "" {
		t.Fatalf("claims %+v lack iat, exp, client_id or sub", c)
	}
	return c
}

func (e *jatEnv) wantValid(tok, sub string) {
	e.t.Helper()
	if st, h := e.validate(tok); st != http.StatusOK || h.Get("X-Token-Subject") != sub {
		e.t.Fatalf("/validate: %d subject %q, want 200 %q", st, h.Get("X-Token-Subject"), sub)
	}
	in := e.introspect(e.rs, tok)
	if in["active"] != true || in["sub"] != sub || in["token_type"] != "access_token" {
		e.t.Fatalf("introspection %v", in)
	}
}

func (e *jatEnv) wantRefused(what, tok string) {
	e.t.Helper()
	if st, _ := e.validate(tok); st != http.StatusUnauthorized {
		e.t.Fatalf("%s: /validate %d, want 401", what, st)
	}
	if in := e.introspect(e.rs, tok); in["active"] != false || len(in) != 1 {
		e.t.Fatalf("%s: introspection %v, want {active:false}", what, in)
	}
}

func TestJWTAccessTokenGrants(t *testing.T) {
	e := newJATEnv(t)
	// client_credentials: sub is the client, no tenant.
	cc := e.issue(e.jwt, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	tok := cc["access_token"].(string)
	c := e.verifyAccess(tok)
	if c.Subject != e.jwt.ID || c.ClientID != e.jwt.ID || c.Scope != "read" || c.Tenant != "" || c.AuthTime != 0 {
		t.Fatalf("client_credentials claims %+v", c)
	}
	if want := time.Now().Add(30 * time.Minute).Unix(); c.Expiry.Time().Unix() < want-60 || c.Expiry.Time().Unix() > want+60 {
		t.Fatalf("exp %v, want about now + the access TTL", c.Expiry.Time())
	}
	e.wantValid(tok, e.jwt.ID)
	if in := e.introspect(e.rs, tok); in["jti"] != c.ID || in["client_id"] != e.jwt.ID || in["scope"] != "read" {
		t.Fatalf("introspection %v, want jti %s", in, c.ID)
	}

	// password: sub is tenant/user, tenant_id set; refresh token opaque.
	pw := e.issue(e.jwt, url.Values{"grant_type": {"password"}, "tenant_id": {"acme"}, "username": {"alice"}, "password": {"correct horse"}})
	c = e.verifyAccess(pw["access_token"].(string))
	if c.Subject != "acme/alice" || c.Tenant != "acme" || c.Scope != "read write" {
		t.Fatalf("password claims %+v", c)
	}
	rt := pw["refresh_token"].(string)
	if strings.Count(rt, ".") != 0 {
		t.Fatalf("refresh token %q is not opaque", rt)
	}

	// refresh, narrowing the scope: the JWT says what the index says.
	rf := e.issue(e.jwt, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"write"}})
	c = e.verifyAccess(rf["access_token"].(string))
	if c.Subject != "acme/alice" || c.Scope != "write" || rf["scope"] != "write" {
		t.Fatalf("refresh claims %+v, response scope %v", c, rf["scope"])
	}
	e.wantValid(rf["access_token"].(string), "acme/alice")
	if in := e.introspect(e.rs, rf["access_token"].(string)); in["scope"] != "write" {
		t.Fatalf("introspection scope %v", in["scope"])
	}

	// A retry with the same refresh token within the grace window (a lost
	// response) gets a fresh JWT; the one it replaces is dropped.
	retry := e.issue(e.jwt, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	c = e.verifyAccess(retry["access_token"].(string))
	if c.Subject != "acme/alice" || c.Scope != "read write" {
		t.Fatalf("grace retry claims %+v", c)
	}
	e.wantValid(retry["access_token"].(string), "acme/alice")
	e.wantRefused("the access token a grace retry replaced", rf["access_token"].(string))

	// authorization_code through the browser flow and golang.org/x/oauth2.
	oc := e.oauth2Config(e.jwt, "read")
	b := e.browser()
	page := e.get(b, strings.TrimPrefix(oc.AuthCodeURL("st"), e.srv.URL))
	page = e.login(b, page, "alice", "correct horse", "tenant_id", "acme")
	code := e.consent(b, page, "allow").redirected(t, jatRedirect, false).Get("code")
	ot, err := oc.Exchange(e.ctx(), code)
	if err != nil {
		t.Fatal(err)
	}
	c = e.verifyAccess(ot.AccessToken)
	if c.Subject != "acme/alice" || c.Tenant != "acme" || c.Scope != "read" {
		t.Fatalf("code claims %+v", c)
	}
	e.wantValid(ot.AccessToken, "acme/alice")
	// Replaying the code revokes what it issued, the JWT included.
	if _, err := oc.Exchange(e.ctx(), code); err == nil {
		t.Fatal("a replayed code was redeemed")
	}
	e.wantRefused("a JWT of a grant whose code was replayed", ot.AccessToken)

	// Another client's refresh token is refused before anything is signed.
	other := e.register(map[string]any{"name": "other", "grant_types": []string{"password", "refresh_token"}, "access_token_format": "jwt"}, http.StatusCreated)
	if st, v := e.token(other, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {retry["refresh_token"].(string)}}); st != http.StatusBadRequest || v["error"] != "invalid_grant" {
		t.Fatalf("another client's refresh token: %d %v", st, v)
	}
	if st, v := e.token(e.jwt, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"tkdr-unknown"}}); st != http.StatusBadRequest || v["error"] != "invalid_grant" {
		t.Fatalf("unknown refresh token: %d %v", st, v)
	}
}

// TestJWTAccessTokenForgeries: the index holds the hash of the whole JWT,
// so nothing but the issued string is accepted, however well it is signed.
func TestJWTAccessTokenForgeries(t *testing.T) {
	e := newJATEnv(t)
	v := e.issue(e.jwt, url.Values{"grant_type": {"password"}, "tenant_id": {"acme"}, "username": {"alice"}, "password": {"correct horse"}, "scope": {"read"}})
	tok := v["access_token"].(string)
	e.wantValid(tok, "acme/alice")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	header := func(alg string) string {
		return b64([]byte(`{"alg":"` + alg + `","kid":"` + e.signer.kid + `","typ":"at+jwt"}`))
	}
	// alg none, same claims.
	none := header("none") + "." + parts[1] + "."
	// HS256 keyed with the public key (PEM and DER), the algorithm
	// confusion attack.
	der, err := x509.MarshalPKIXPublicKey(&e.signer.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := func(key []byte) string {
		in := header("HS256") + "." + parts[1]
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	// A changed claim under the original signature.
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	changed := parts[0] + "." + b64([]byte(strings.Replace(string(payload), `"scope":"read"`, `"scope":"read write"`, 1))) + "." + parts[2]
	// A JWT the server really signed, but as an ID token (typ JWT) with
	// the very same claims.
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	idTok, err := e.signer.Sign(context.Background(), "JWT", claims)
	if err != nil {
		t.Fatal(err)
	}
	// Re-signed as at+jwt by the right key but not issued by the token
	// endpoint (a leaked signing oracle would need the index too).
	resigned, err := e.signer.Sign(context.Background(), "at+jwt", claims)
	if err != nil {
		t.Fatal(err)
	}
	for what, f := range map[string]string{
		"alg none": none, "HS256 keyed with the PEM public key": hs(pemKey), "HS256 keyed with the DER public key": hs(der),
		"a changed claim": changed, "an ID token": idTok, "a re-signed copy": resigned,
		"the JWT with a trailing dot": tok + ".", "the header and claims alone": parts[0] + "." + parts[1],
	} {
		e.wantRefused(what, f)
	}
	e.wantValid(tok, "acme/alice")
	e.revoke(e.jwt, tok)
	e.wantRefused("a revoked JWT", tok)
}

// TestJWTAccessTokenClientCredentialsLibrary: golang.org/x/oauth2's
// clientcredentials gets a JWT that verifies with the JWKS.
func TestJWTAccessTokenClientCredentialsLibrary(t *testing.T) {
	e := newJATEnv(t)
	cfg := clientcredentials.Config{ClientID: e.jwt.ID, ClientSecret: e.jwt.Secret, TokenURL: e.srv.URL + "/token", Scopes: []string{"write"}}
	tok, err := cfg.Token(context.WithValue(context.Background(), oauth2.HTTPClient, e.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	c := e.verifyAccess(tok.AccessToken)
	if c.Subject != e.jwt.ID || c.ClientID != e.jwt.ID || c.Scope != "write" || !c.Audience.Contains(e.jwt.ID) || c.Issuer != azIssuer {
		t.Fatalf("claims %+v", c)
	}
	e.wantValid(tok.AccessToken, e.jwt.ID)
}

func TestJWTAccessTokenRegistration(t *testing.T) {
	e := newJATEnv(t)
	e.register(map[string]any{"name": "x", "grant_types": []string{"client_credentials"}, "access_token_format": "JWT"}, http.StatusBadRequest)
	e.register(map[string]any{"name": "x", "grant_types": []string{"client_credentials"}, "access_token_format": "paseto"}, http.StatusBadRequest)
	opaque := e.register(map[string]any{"name": "x", "grant_types": []string{"client_credentials"}, "access_token_format": "opaque"}, http.StatusCreated)
	v := e.issue(opaque, url.Values{"grant_type": {"client_credentials"}})
	if tok := v["access_token"].(string); !strings.HasPrefix(tok, "tkda-") {
		t.Fatalf("opaque client got %q", tok)
	}
	// GET shows the format; PUT without it makes the client opaque again.
	read := func(id string) string {
		resp := e.admin(http.MethodGet, "/admin/clients/"+id, nil)
		defer resp.Body.Close()
		var v struct {
			Format string `json:"access_token_format"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v.Format
	}
	if f := read(e.jwt.ID); f != "jwt" {
		t.Fatalf("GET access_token_format %q", f)
	}
	if f := read(opaque.ID); f != "opaque" {
		t.Fatalf("GET access_token_format %q", f)
	}
	resp := e.admin(http.MethodPut, "/admin/clients/"+opaque.ID, map[string]any{"name": "x", "grant_types": []string{"client_credentials"}, "access_token_format": "jwt"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || read(opaque.ID) != "jwt" {
		t.Fatalf("PUT to jwt: %d", resp.StatusCode)
	}
	v = e.issue(opaque, url.Values{"grant_type": {"client_credentials"}})
	e.verifyAccess(v["access_token"].(string))
}

// TestJWTAccessTokenNoSigner: without a signer a jwt registration is
// refused, and a jwt client that exists anyway (a snapshot restored on a
// node without keys) gets a 400 saying why, never a 500.
func TestJWTAccessTokenNoSigner(t *testing.T) {
	f := fsm.New()
	s, err := httpapi.New(httpapi.Config{
		FSM: f, Replicator: httpapi.NewMemReplicator(f), AdminToken: azAdminToken, Issuer: azIssuer,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	e := &jatEnv{azEnv: &azEnv{t: t, srv: srv}}
	e.register(map[string]any{"name": "x", "grant_types": []string{"client_credentials"}, "access_token_format": "jwt"}, http.StatusBadRequest)

	c := azClient{ID: "restored", Secret: "tkds-restored-secret"}
	res := f.Apply(1000, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{
		ID: c.ID, Name: "restored", SecretHash: fsm.HashOf(c.Secret), GrantTypes: []string{"client_credentials"},
		Scopes: []string{"read"}, AccessTokenFormat: "jwt", CreatedAt: time.Now().UnixNano(),
	}}))
	if res.Outcome != fsm.OK {
		t.Fatal(res.Err())
	}
	st, v := e.token(c, url.Values{"grant_type": {"client_credentials"}})
	if st != http.StatusBadRequest || v["error"] != "unauthorized_client" || v["error_description"] == "" {
		t.Fatalf("jwt client without a signer: %d %v", st, v)
	}
}

// TestJWTAccessTokenLimits: /introspect and /revoke take a token up to
// 4096 bytes, the longest JWT tokend issues.
func TestJWTAccessTokenLimits(t *testing.T) {
	e := newJATEnv(t)
	long := strings.Repeat("a", 4096)
	if in := e.introspect(e.rs, long); in["active"] != false {
		t.Fatalf("introspection of 4096 bytes: %v", in)
	}
	p := e.post(e.srv.Client(), "/introspect", url.Values{"token": {long + "a"}, "client_id": {e.rs.ID}, "client_secret": {e.rs.Secret}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "invalid_request") {
		t.Fatalf("introspection of 4097 bytes: %d %s", p.status, p.body)
	}
	e.revoke(e.jwt, long)
}

// TestJWTAccessTokenImplicit: the implicit flow's access token is a JWT
// too, about the signed-in user.
func TestJWTAccessTokenImplicit(t *testing.T) {
	e := newJATEnv(t)
	c := e.register(map[string]any{"name": "spa", "redirect_uris": []string{jatRedirect}, "grant_types": []string{"implicit"},
		"scopes": []string{"read"}, "public": true, "access_token_format": "jwt"}, http.StatusCreated)
	b := e.browser()
	page := e.authorize(b, url.Values{"response_type": {"token"}, "client_id": {c.ID}, "redirect_uri": {jatRedirect}, "state": {"s1"}})
	page = e.login(b, page, "alice", "correct horse", "tenant_id", "acme")
	v := e.consent(b, page, "allow").redirected(t, jatRedirect, true)
	tok := v.Get("access_token")
	claims := e.verifyAccess(tok)
	if claims.Subject != "acme/alice" || claims.ClientID != c.ID || claims.Scope != "read" || claims.Tenant != "acme" {
		t.Fatalf("implicit claims %+v", claims)
	}
	e.wantValid(tok, "acme/alice")
	e.revoke(c, tok)
	e.wantRefused("a revoked implicit JWT", tok)
}
