package fsm

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unsafe"
)

// Hash is the SHA-256 of a token, code or client secret. It is the only form
// in which those secrets enter the state machine.
type Hash [32]byte

// HashOf returns the SHA-256 of s. It reads s in place rather than
// converting it to a []byte, which would allocate on every validation;
// sha256 neither keeps nor modifies its input.
func HashOf(s string) Hash { return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s))) }

// Equal compares two hashes in constant time.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// IsZero reports whether h is the zero hash (no secret set).
func (h Hash) IsZero() bool { return h == Hash{} }

// Kind tells what a token is.
type Kind uint8

const (
	KindAccess Kind = iota + 1
	KindRefresh
	KindCode
)

func (k Kind) String() string {
	switch k {
	case KindAccess:
		return "access_token"
	case KindRefresh:
		return "refresh_token"
	case KindCode:
		return "authorization_code"
	}
	return "unknown"
}

// Client is a registered OAuth client. A *Client handed out by the FSM is
// never modified afterwards; updates replace it.
type Client struct {
	ID           string
	Name         string
	SecretHash   Hash // zero for public clients
	Public       bool
	RedirectURIs []string
	GrantTypes   []string
	Scopes       []string
	// Introspect marks a resource server: it may introspect every
	// client's tokens. Any other client may introspect only its own.
	Introspect bool
	// AccessTokenFormat is how the client's access tokens look: "" (or
	// "opaque") for random strings, "jwt" for RFC 9068 signed tokens.
	// Either way the index holds only the token's hash.
	AccessTokenFormat string
	// PostLogoutRedirectURIs are where RP-initiated logout may send the
	// browser afterwards (exact match).
	PostLogoutRedirectURIs []string
	CreatedAt              int64 // unix nanoseconds
	UpdatedAt              int64
}

// HasGrant reports whether the client is registered for grant type g.
func (c *Client) HasGrant(g string) bool { return contains(c.GrantTypes, g) }

// HasRedirectURI reports whether uri matches a registered one: exactly, or,
// for an http URI to a loopback IP literal (127.0.0.1 or [::1]), exactly
// but for the port. A native app listens on whatever port the system
// gives it at run time, so RFC 8252 §7.3 requires any port to be allowed
// there; "localhost" gets no such leeway (§8.3: it may not resolve to
// loopback).
func (c *Client) HasRedirectURI(uri string) bool {
	if contains(c.RedirectURIs, uri) {
		return true
	}
	want, ok := loopbackWithoutPort(uri)
	if !ok {
		return false
	}
	for _, r := range c.RedirectURIs {
		if got, ok := loopbackWithoutPort(r); ok && got == want {
			return true
		}
	}
	return false
}

// loopbackWithoutPort returns uri with its port removed when uri is an
// http URI to a loopback IP literal with nothing unusual in it.
func loopbackWithoutPort(uri string) (string, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1":
	default:
		return "", false
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", false
		}
	}
	u.Host = u.Hostname()
	if strings.Contains(u.Host, ":") {
		u.Host = "[" + u.Host + "]"
	}
	return u.String(), true
}

// User is a resource owner inside a tenant.
type User struct {
	Tenant       string
	Username     string
	PasswordHash string // PHC-encoded slow hash (argon2id); never a raw password
	CreatedAt    int64
	// OpenID Connect standard claims, released by the profile
	// (Name, PreferredUsername) and email (Email, EmailVerified) scopes.
	Name, Email       string
	EmailVerified     bool
	PreferredUsername string
}

// Token is what a lookup returns: the token's own times and the grant it
// belongs to. Its strings are shared with the index and must not be changed.
type Token struct {
	Kind      Kind
	GrantID   uint64
	ClientID  string
	Tenant    string
	Username  string // empty for client_credentials grants
	Scope     string
	IssuedAt  int64 // unix nanoseconds
	ExpiresAt int64
	// Nonce and AuthTime (unix seconds) of an OpenID sign-in, carried by
	// every token of its grant; empty and 0 for other grants.
	Nonce    string
	AuthTime int64
}

// Subject is the stable subject of the token: tenant/username for user
// grants, the client id for client_credentials.
func (t *Token) Subject() string { return subjectOf(t.ClientID, t.Tenant, t.Username) }

func subjectOf(clientID, tenant, username string) string {
	if username == "" {
		return clientID
	}
	return tenant + "/" + username
}

// Outcome is how a command ended. Conditional commands report their decision
// here rather than as a Go error so every replica returns the same value.
type Outcome uint8

const (
	OK Outcome = iota
	// NotFound: the token, code, client or user does not exist (or expired).
	NotFound
	// WrongClient: the token belongs to another client.
	WrongClient
	// Revoked: the grant had already been revoked.
	Revoked
	// Reused: a rotated-out refresh token or a redeemed code was presented
	// again; the grant has been revoked.
	Reused
	// Mismatch: redirect URI, PKCE verifier or scope does not match.
	Mismatch
	// Exists: a create met an existing entry.
	Exists
	// BadCommand: the command could not be decoded; nothing changed.
	BadCommand
	// Conflict: a conditional write (PutSigningKeys.IfGeneration) met a
	// state that changed since it was read; nothing changed.
	Conflict
	// Invalid: the command decoded but carries values the state refuses
	// (a malformed signing-key set, an empty session id); nothing changed.
	Invalid
)

var outcomeErrors = [...]error{
	OK:          nil,
	NotFound:    errors.New("not found"),
	WrongClient: errors.New("token belongs to another client"),
	Revoked:     errors.New("grant revoked"),
	Reused:      errors.New("token reused; grant revoked"),
	Mismatch:    errors.New("parameters do not match the grant"),
	Exists:      errors.New("already exists"),
	BadCommand:  errors.New("malformed command"),
	Conflict:    errors.New("changed concurrently; read again and retry"),
	Invalid:     errors.New("invalid values"),
}

// Err returns the outcome as an error, nil for OK. Errors compare with ==.
func (o Outcome) Err() error {
	if int(o) < len(outcomeErrors) {
		return outcomeErrors[o]
	}
	return errors.New("unknown outcome")
}

// Errors callers can match with errors.Is against Result.Err().
var (
	ErrNotFound    = outcomeErrors[NotFound]
	ErrWrongClient = outcomeErrors[WrongClient]
	ErrRevoked     = outcomeErrors[Revoked]
	ErrReused      = outcomeErrors[Reused]
	ErrMismatch    = outcomeErrors[Mismatch]
	ErrExists      = outcomeErrors[Exists]
	ErrBadCommand  = outcomeErrors[BadCommand]
	ErrConflict    = outcomeErrors[Conflict]
	ErrInvalid     = outcomeErrors[Invalid]
)

// Result is what Apply returns for one command.
type Result struct {
	Outcome Outcome
	// Index is the log index the command was applied at.
	Index uint64
	// GrantID of the grant that was created or changed.
	GrantID uint64
	// IssuedCount is how many access tokens the subject has been issued,
	// this one included (Martini's token_issued_counter).
	IssuedCount uint64
	// Count of grants affected by bulk revocations and purges; for
	// PutSigningKeys, the key set's generation after the command (the
	// current one when it reports Conflict).
	Count uint64
	// Scope is the effective scope of the access token an IssueGrant,
	// RedeemCode or RotateRefresh issued (the grant's, or the narrower one
	// a refresh asked for), so the response needs no read-back.
	Scope string
}

// Err returns the outcome as an error.
func (r Result) Err() error { return r.Outcome.Err() }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
