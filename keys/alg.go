package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// The algorithms a key set may hold. ES256 is the default: small keys and
// signatures, fast signing. RS256 is what OpenID Connect requires every
// provider to support (2048-bit keys). EdDSA is Ed25519.
const (
	ES256 = "ES256"
	RS256 = "RS256"
	EdDSA = "EdDSA"
)

// Algorithms lists the supported algorithms.
var Algorithms = []string{ES256, RS256, EdDSA}

// rsaBits is the modulus size of RS256 keys.
const rsaBits = 2048

func supported(alg string) bool { return slices.Contains(Algorithms, alg) }

// generated is a fresh key pair: the signer, its PKCS#8 encoding (what
// gets sealed) and its public JWK.
type generated struct {
	kid    string
	signer crypto.Signer
	pkcs8  []byte
	public []byte // public JWK JSON with kid, alg and use
}

// generate makes a key pair for alg. The key ID is the RFC 7638 SHA-256
// thumbprint of the public key, so it names the key itself and two nodes
// never give different keys one ID.
func generate(alg string) (*generated, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("keys: unsupported algorithm %q (want one of %v)", alg, Algorithms)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: encode %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("keys: %s key thumbprint: %w", alg, err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pub, err := json.Marshal(jwk)
	if err != nil {
		return nil, fmt.Errorf("keys: encode %s public key: %w", alg, err)
	}
	return &generated{kid: jwk.KeyID, signer: priv, pkcs8: pkcs8, public: pub}, nil
}

// parsePrivate decodes an opened PKCS#8 key and checks that it is a key
// for alg. Errors never quote the bytes.
func parsePrivate(kid, alg string, pkcs8 []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: private key does not decode", kid)
	}
	ok := false
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		ok = alg == ES256 && k.Curve == elliptic.P256()
	case *rsa.PrivateKey:
		ok = alg == RS256 && k.N.BitLen() >= rsaBits
	case ed25519.PrivateKey:
		ok = alg == EdDSA
	}
	if !ok {
		return nil, fmt.Errorf("keys: key %s: private key is not a %s key", kid, alg)
	}
	return k.(crypto.Signer), nil
}

// parsePublic decodes a stored public JWK and checks it against the
// entry it came with: a public key, the same ID and algorithm.
func parsePublic(kid, alg string, public []byte) (jose.JSONWebKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(public); err != nil {
		return jwk, fmt.Errorf("keys: key %s: public key: %w", kid, err)
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return jwk, fmt.Errorf("keys: key %s: not a valid public key", kid)
	}
	if jwk.KeyID != kid || jwk.Algorithm != alg {
		return jwk, fmt.Errorf("keys: key %s: public key names kid %q alg %q", kid, jwk.KeyID, jwk.Algorithm)
	}
	return jwk, nil
}
