package fsm

import "fmt"

// Command is one change to the state. The set is closed: only the types in
// this file implement it.
type Command interface {
	op() op
	encode(*encoder)
	decode(*decoder)
}

type op uint8

const (
	opIssueGrant op = iota + 1
	opRedeemCode
	opRotateRefresh
	opRevokeToken
	opRevokeClient
	opRevokeSubject
	opPutClient
	opDeleteClient
	opPutUser
	opDeleteUser
	opPurge
	opNoop
	opRememberConsent // consent.go
	opForgetConsent
	opStartSession // session.go
	opEndSession
	opPutSigningKeys // keys.go
	opLast           = opPutSigningKeys
)

// The first byte of every encoded command is its encoding version. A
// replica refuses (as BadCommand, changing nothing) a version it does not
// know, so a rolling upgrade must deploy readers before writers.
//
// Encode writes the lowest version that can carry the command, so replicas
// that know only version 1 keep applying every command that does not use a
// later field; Decode accepts every version it knows but refuses a command
// written in a higher version than it needs, so every command still has
// exactly one encoding.
const (
	// encodingVersion (1) is the base every command is written in.
	encodingVersion = 1
	// encodingVersionFlags (2) adds a flags field (clientFlag*) to the
	// client of a PutClient, written only when a flag is set.
	encodingVersionFlags = 2
	// encodingVersionOIDC (3) adds OpenID Connect fields: the nonce and
	// auth_time of an IssueGrant, a user's standard claims in PutUser, a
	// client's access token format and post-logout redirect URIs in
	// PutClient (after the flags field, which version 3 always writes).
	// Each is written only when the command sets one of them.
	encodingVersionOIDC = 3
)

// Client flags, the flags field of a client in encoding version 2 and in
// snapshots from version 3 on. A decoder refuses bits it does not know.
const (
	clientFlagIntrospect = 1 << iota
	clientFlagsKnown     = clientFlagIntrospect
)

func clientFlags(c *Client) uint64 {
	var f uint64
	if c.Introspect {
		f |= clientFlagIntrospect
	}
	return f
}

func setClientFlags(c *Client, f uint64) bool {
	if f&^clientFlagsKnown != 0 {
		return false
	}
	c.Introspect = f&clientFlagIntrospect != 0
	return true
}

// versionOf is the encoding version Encode writes c in: the lowest that
// carries every field c sets.
func versionOf(c Command) byte {
	switch c := c.(type) {
	case *IssueGrant:
		if c.Nonce != "" || c.AuthTime != 0 {
			return encodingVersionOIDC
		}
	case *PutClient:
		if clientHasOIDC(&c.Client) {
			return encodingVersionOIDC
		}
		if clientFlags(&c.Client) != 0 {
			return encodingVersionFlags
		}
	case *PutUser:
		if userHasClaims(&c.User) {
			return encodingVersionOIDC
		}
	}
	return encodingVersion
}

func clientHasOIDC(c *Client) bool {
	return c.AccessTokenFormat != "" || len(c.PostLogoutRedirectURIs) != 0
}

func userHasClaims(u *User) bool {
	return u.Name != "" || u.Email != "" || u.EmailVerified || u.PreferredUsername != ""
}

// TokenSpec is one token to create: its hash and expiry. A zero Hash means
// "none".
type TokenSpec struct {
	Hash      Hash
	ExpiresAt int64 // unix nanoseconds
}

func (e *encoder) token(t TokenSpec) {
	e.hash(t.Hash)
	e.varint(t.ExpiresAt)
}

func (d *decoder) token() TokenSpec { return TokenSpec{Hash: d.hash(), ExpiresAt: d.varint()} }

// IssueGrant creates a grant with any of an authorization code, an access
// token and a refresh token (password, client_credentials and implicit
// grants issue tokens directly; the code flow issues only a code).
type IssueGrant struct {
	ClientID, Tenant, Username, Scope string
	IssuedAt                          int64
	Code, Access, Refresh             TokenSpec
	// Bound to the code, checked when it is redeemed.
	RedirectURI, CodeChallenge string
	// Nonce and AuthTime (unix seconds) of an OpenID sign-in: kept on the
	// grant for the ID tokens of its code redemption and refreshes, and
	// handed out by Lookup. Empty and 0 for any other grant.
	Nonce    string
	AuthTime int64
}

// RedeemCode exchanges an authorization code for tokens, exactly once. A
// second redemption revokes the grant (RFC 6749 §4.1.2), even after the
// code expired: a redeemed code is kept while its grant holds other tokens.
type RedeemCode struct {
	Code        Hash
	ClientID    string
	RedirectURI string
	// Challenge is BASE64URL(SHA256(code_verifier)), empty when none was sent.
	Challenge       string
	Now             int64
	Access, Refresh TokenSpec
}

// RotateRefresh trades a refresh token for a new access and refresh token.
// Presenting a superseded token revokes the grant (RFC 9700 §4.14.2),
// except that the most recently rotated-out token may be presented again
// within Grace nanoseconds of its rotation while its successor is unused:
// the client probably lost the response, so a fresh pair is issued, the
// successor's access token is dropped and the successor itself becomes
// superseded (presenting it later revokes the grant). See the package doc.
type RotateRefresh struct {
	Old             Hash
	ClientID        string
	Scope           string // empty: the grant's scope
	Now             int64
	Grace           int64
	Access, Refresh TokenSpec
}

// RevokeToken revokes the grant the token belongs to. An empty ClientID
// (admin) skips the ownership check.
type RevokeToken struct {
	Token    Hash
	ClientID string
}

// RevokeClient revokes every grant of a client.
type RevokeClient struct{ ClientID string }

// RevokeSubject revokes every grant of a user.
type RevokeSubject struct{ Tenant, Username string }

// PutClient creates (Create) or replaces a client. KeepSecret keeps the
// stored secret hash, so an edit cannot undo a concurrent secret rotation.
type PutClient struct {
	Client     Client
	Create     bool
	KeepSecret bool
}

// DeleteClient removes a client and revokes all its grants.
type DeleteClient struct{ ClientID string }

// PutUser creates (Create) or replaces a user.
type PutUser struct {
	User   User
	Create bool
}

// DeleteUser removes a user and revokes all their grants.
type DeleteUser struct{ Tenant, Username string }

// Purge removes entries that expired before Now. The leader proposes it
// periodically so memory stays proportional to live tokens.
type Purge struct{ Now int64 }

// Noop changes nothing; a new leader commits one to learn its commit index.
type Noop struct{}

func (*IssueGrant) op() op    { return opIssueGrant }
func (*RedeemCode) op() op    { return opRedeemCode }
func (*RotateRefresh) op() op { return opRotateRefresh }
func (*RevokeToken) op() op   { return opRevokeToken }
func (*RevokeClient) op() op  { return opRevokeClient }
func (*RevokeSubject) op() op { return opRevokeSubject }
func (*PutClient) op() op     { return opPutClient }
func (*DeleteClient) op() op  { return opDeleteClient }
func (*PutUser) op() op       { return opPutUser }
func (*DeleteUser) op() op    { return opDeleteUser }
func (*Purge) op() op         { return opPurge }
func (*Noop) op() op          { return opNoop }

func (c *IssueGrant) encode(e *encoder) {
	e.string(c.ClientID)
	e.string(c.Tenant)
	e.string(c.Username)
	e.string(c.Scope)
	e.varint(c.IssuedAt)
	e.token(c.Code)
	e.token(c.Access)
	e.token(c.Refresh)
	e.string(c.RedirectURI)
	e.string(c.CodeChallenge)
	if e.version >= encodingVersionOIDC {
		e.string(c.Nonce)
		e.varint(c.AuthTime)
	}
}

func (c *IssueGrant) decode(d *decoder) {
	c.ClientID, c.Tenant, c.Username, c.Scope = d.string(), d.string(), d.string(), d.string()
	c.IssuedAt = d.varint()
	c.Code, c.Access, c.Refresh = d.token(), d.token(), d.token()
	c.RedirectURI, c.CodeChallenge = d.string(), d.string()
	if d.version >= encodingVersionOIDC {
		c.Nonce, c.AuthTime = d.string(), d.varint()
	}
}

func (c *RedeemCode) encode(e *encoder) {
	e.hash(c.Code)
	e.string(c.ClientID)
	e.string(c.RedirectURI)
	e.string(c.Challenge)
	e.varint(c.Now)
	e.token(c.Access)
	e.token(c.Refresh)
}

func (c *RedeemCode) decode(d *decoder) {
	c.Code = d.hash()
	c.ClientID, c.RedirectURI, c.Challenge = d.string(), d.string(), d.string()
	c.Now = d.varint()
	c.Access, c.Refresh = d.token(), d.token()
}

func (c *RotateRefresh) encode(e *encoder) {
	e.hash(c.Old)
	e.string(c.ClientID)
	e.string(c.Scope)
	e.varint(c.Now)
	e.varint(c.Grace)
	e.token(c.Access)
	e.token(c.Refresh)
}

func (c *RotateRefresh) decode(d *decoder) {
	c.Old = d.hash()
	c.ClientID, c.Scope = d.string(), d.string()
	c.Now, c.Grace = d.varint(), d.varint()
	c.Access, c.Refresh = d.token(), d.token()
}

func (c *RevokeToken) encode(e *encoder) { e.hash(c.Token); e.string(c.ClientID) }
func (c *RevokeToken) decode(d *decoder) { c.Token, c.ClientID = d.hash(), d.string() }

func (c *RevokeClient) encode(e *encoder) { e.string(c.ClientID) }
func (c *RevokeClient) decode(d *decoder) { c.ClientID = d.string() }

func (c *RevokeSubject) encode(e *encoder) { e.string(c.Tenant); e.string(c.Username) }
func (c *RevokeSubject) decode(d *decoder) { c.Tenant, c.Username = d.string(), d.string() }

// encodeClient writes c; withFlags adds the flags field (command encoding
// version 2, snapshot version 3), withOIDC the access token format and
// post-logout redirect URIs (command encoding version 3, snapshot version
// 4; only with withFlags).
func encodeClient(e *encoder, c *Client, withFlags, withOIDC bool) {
	e.string(c.ID)
	e.string(c.Name)
	e.hash(c.SecretHash)
	e.bool(c.Public)
	e.strings(c.RedirectURIs)
	e.strings(c.GrantTypes)
	e.strings(c.Scopes)
	e.varint(c.CreatedAt)
	e.varint(c.UpdatedAt)
	if withFlags {
		e.uvarint(clientFlags(c))
	}
	if withOIDC {
		e.string(c.AccessTokenFormat)
		e.strings(c.PostLogoutRedirectURIs)
	}
}

// decodeClient reads what encodeClient wrote with the same options.
func decodeClient(d *decoder, withFlags, withOIDC bool) Client {
	var c Client
	c.ID, c.Name = d.string(), d.string()
	c.SecretHash = d.hash()
	c.Public = d.bool()
	c.RedirectURIs, c.GrantTypes, c.Scopes = d.strings(), d.strings(), d.strings()
	c.CreatedAt, c.UpdatedAt = d.varint(), d.varint()
	if withFlags && !setClientFlags(&c, d.uvarint()) {
		d.fail()
	}
	if withOIDC {
		c.AccessTokenFormat, c.PostLogoutRedirectURIs = d.string(), d.strings()
	}
	return c
}

func (c *PutClient) encode(e *encoder) {
	encodeClient(e, &c.Client, e.version >= encodingVersionFlags, e.version >= encodingVersionOIDC)
	e.bool(c.Create)
	e.bool(c.KeepSecret)
}

func (c *PutClient) decode(d *decoder) {
	c.Client = decodeClient(d, d.version >= encodingVersionFlags, d.version >= encodingVersionOIDC)
	c.Create, c.KeepSecret = d.bool(), d.bool()
}

func (c *DeleteClient) encode(e *encoder) { e.string(c.ClientID) }
func (c *DeleteClient) decode(d *decoder) { c.ClientID = d.string() }

// encodeUser writes u; withClaims adds the OpenID Connect claims (command
// encoding version 3, snapshot version 4).
func encodeUser(e *encoder, u *User, withClaims bool) {
	e.string(u.Tenant)
	e.string(u.Username)
	e.string(u.PasswordHash)
	e.varint(u.CreatedAt)
	if withClaims {
		e.string(u.Name)
		e.string(u.Email)
		e.bool(u.EmailVerified)
		e.string(u.PreferredUsername)
	}
}

// decodeUser reads what encodeUser wrote with the same withClaims.
func decodeUser(d *decoder, withClaims bool) User {
	u := User{Tenant: d.string(), Username: d.string(), PasswordHash: d.string(), CreatedAt: d.varint()}
	if withClaims {
		u.Name, u.Email, u.EmailVerified, u.PreferredUsername = d.string(), d.string(), d.bool(), d.string()
	}
	return u
}

func (c *PutUser) encode(e *encoder) {
	encodeUser(e, &c.User, e.version >= encodingVersionOIDC)
	e.bool(c.Create)
}

func (c *PutUser) decode(d *decoder) {
	c.User = decodeUser(d, d.version >= encodingVersionOIDC)
	c.Create = d.bool()
}

func (c *DeleteUser) encode(e *encoder) { e.string(c.Tenant); e.string(c.Username) }
func (c *DeleteUser) decode(d *decoder) { c.Tenant, c.Username = d.string(), d.string() }

func (c *Purge) encode(e *encoder) { e.varint(c.Now) }
func (c *Purge) decode(d *decoder) { c.Now = d.varint() }

func (*Noop) encode(*encoder) {}
func (*Noop) decode(*decoder) {}

// encodeCap is Encode's first buffer size: an IssueGrant, the command
// written per token issued, is 2 header bytes, three token specs of up to
// 42 bytes and its strings, so 256 bytes hold it in one allocation (128
// did not: every issue grew the buffer once).
const encodeCap = 256

// Encode returns the binary form of c: a version byte, an op byte, then the
// command's fields.
func Encode(c Command) []byte {
	e := encoder{b: make([]byte, 0, encodeCap), version: versionOf(c)}
	e.byte(e.version)
	e.byte(byte(c.op()))
	// The commands written per token issued are encoded through their
	// concrete types: passing &e to an interface method moves e to the
	// heap, one more allocation per request. Only the default branch's
	// copy pays that.
	switch c := c.(type) {
	case *IssueGrant:
		c.encode(&e)
	case *RotateRefresh:
		c.encode(&e)
	case *RedeemCode:
		c.encode(&e)
	default:
		other := e
		c.encode(&other)
		return other.b
	}
	return e.b
}

// Decode parses a command encoded by Encode. It never panics; any malformed
// input is an error.
func Decode(b []byte) (Command, error) {
	d := decoder{b: b}
	d.version = d.byte()
	if d.err == nil && (d.version < encodingVersion || d.version > encodingVersionOIDC) {
		return nil, fmt.Errorf("fsm: unknown command encoding version %d", d.version)
	}
	o := op(d.byte())
	if d.err != nil {
		return nil, fmt.Errorf("fsm: decode command: %w", d.err)
	}
	var c Command
	switch o {
	case opIssueGrant:
		c = new(IssueGrant)
	case opRedeemCode:
		c = new(RedeemCode)
	case opRotateRefresh:
		c = new(RotateRefresh)
	case opRevokeToken:
		c = new(RevokeToken)
	case opRevokeClient:
		c = new(RevokeClient)
	case opRevokeSubject:
		c = new(RevokeSubject)
	case opPutClient:
		c = new(PutClient)
	case opDeleteClient:
		c = new(DeleteClient)
	case opPutUser:
		c = new(PutUser)
	case opDeleteUser:
		c = new(DeleteUser)
	case opPurge:
		c = new(Purge)
	case opNoop:
		c = new(Noop)
	case opRememberConsent:
		c = new(RememberConsent)
	case opForgetConsent:
		c = new(ForgetConsent)
	case opStartSession:
		c = new(StartSession)
	case opEndSession:
		c = new(EndSession)
	case opPutSigningKeys:
		c = new(PutSigningKeys)
	default:
		return nil, fmt.Errorf("fsm: unknown command op %d", o)
	}
	c.decode(&d)
	if d.err != nil {
		return nil, fmt.Errorf("fsm: decode command op %d: %w", o, d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("fsm: decode command op %d: %d trailing bytes", o, len(d.b))
	}
	if v := versionOf(c); v != d.version {
		return nil, fmt.Errorf("fsm: decode command op %d: encoding version %d where Encode writes %d", o, d.version, v)
	}
	return c, nil
}

// EncodeResult and DecodeResult carry a Result across the internal
// forwarding channel. The base form is the outcome byte and four varints
// (Index, GrantID, IssuedCount, Count). A result with a Scope appends an
// extension: resultExtScope and the scope. EncodeResult writes the
// extension only when Scope is set, so every other result keeps the base
// form, and DecodeResult reads both but refuses an extension that carries
// nothing, so every Result has exactly one encoding.
const resultExtScope = 1

// EncodeResult writes r for DecodeResult.
func EncodeResult(r Result) []byte {
	e := encoder{b: make([]byte, 0, 24+len(r.Scope))}
	e.byte(byte(r.Outcome))
	e.uvarint(r.Index)
	e.uvarint(r.GrantID)
	e.uvarint(r.IssuedCount)
	e.uvarint(r.Count)
	if r.Scope != "" {
		e.byte(resultExtScope)
		e.string(r.Scope)
	}
	return e.b
}

// DecodeResult parses what EncodeResult wrote, with or without the
// extension (an older leader writes only the base form).
func DecodeResult(b []byte) (Result, error) {
	d := decoder{b: b}
	r := Result{Outcome: Outcome(d.byte()), Index: d.uvarint(), GrantID: d.uvarint(), IssuedCount: d.uvarint(), Count: d.uvarint()}
	if d.err == nil && len(d.b) != 0 {
		if d.byte() != resultExtScope {
			d.fail()
		}
		if r.Scope = d.string(); r.Scope == "" {
			d.fail()
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return Result{}, fmt.Errorf("fsm: decode result: %w", errShort)
	}
	return r, nil
}
