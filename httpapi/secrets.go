package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Tokens are 256 random bits in a URL-safe alphabet behind a type prefix,
// so a leaked token is recognisable by secret scanners and by eye. The
// alphabet is base64url with '~' in place of '_', keeping every character
// inside the contract's [A-Za-z0-9._~-].
const (
	prefixAccess  = "tkda-"
	prefixRefresh = "tkdr-"
	prefixCode    = "tkdc-"
	prefixSecret  = "tkds-"
)

var tokenEncoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~").WithPadding(base64.NoPadding)

// maxPrefix bounds the prefixes newSecret builds on the stack; every
// prefix above is 5 bytes.
const maxPrefix = 8

// newSecret returns prefix + 43 characters carrying 256 random bits, in one
// allocation (it runs for every token issued).
func newSecret(prefix string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+
		// crashes the program itself if it would).
		panic(err)
	}
	if len(prefix) > maxPrefix {
		return prefix + tokenEncoding.EncodeToString(b[:])
	}
	var out [maxPrefix + 43]byte
	n := copy(out[:], prefix)
	tokenEncoding.Encode(out[n:], b[:])
	return string(out[:n+tokenEncoding.EncodedLen(len(b))])
}

// newClientID returns a 128-bit random client id in hex: 32 characters
// that survive shells, URLs and Basic auth without quoting.
func newClientID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// s256 is the PKCE S256 transform: BASE64URL(SHA256(verifier)) (RFC 7636).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
