package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"
)

// sampleCommands returns one fully populated value of every command type.
// Every field is set (non-zero, and extreme where that tests the varints),
// so a field the codec forgets shows up as a DeepEqual failure.
func sampleCommands() []Command {
	h := HashOf
	return []Command{
		&IssueGrant{
			ClientID: "client-1", Tenant: "acme", Username: "ålice", Scope: "openid profile read",
			IssuedAt:    1_700_000_000_123_456_789,
			Code:        TokenSpec{Hash: h("code0"), ExpiresAt: math.MaxInt64},
			Access:      TokenSpec{Hash: h("access0"), ExpiresAt: -1},
			Refresh:     TokenSpec{Hash: h("refresh0"), ExpiresAt: math.MinInt64},
			RedirectURI: "https://app.example/cb?x=1", CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		},
		&RedeemCode{
			Code: h("code"), ClientID: "client-1", RedirectURI: "https://app.example/cb?x=1",
			Challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Now: 42,
			Access:  TokenSpec{Hash: h("access2"), ExpiresAt: 1 << 40},
			Refresh: TokenSpec{Hash: h("refresh2"), ExpiresAt: 1<<41 + 3},
		},
		&RotateRefresh{
			Old: h("refresh"), ClientID: "client-1", Scope: "read", Now: -42, Grace: 10_000_000_000,
			Access:  TokenSpec{Hash: h("access3"), ExpiresAt: 7},
			Refresh: TokenSpec{Hash: h("refresh3"), ExpiresAt: 8},
		},
		&RevokeToken{Token: h("access"), ClientID: "client-1"},
		&RevokeClient{ClientID: "client-1"},
		&RevokeSubject{Tenant: "acme", Username: "ålice"},
		&PutClient{
			Client: Client{
				ID: "client-1", Name: "Client One ✓", SecretHash: h("secret"), Public: true,
				RedirectURIs: []string{"https://a/cb", "", "https://b/cb"},
				GrantTypes:   []string{"authorization_code", "refresh_token"},
				Scopes:       []string{"openid"},
				Introspect:   true,
				CreatedAt:    math.MinInt64, UpdatedAt: math.MaxInt64,
			},
			Create: true, KeepSecret: true,
		},
		&DeleteClient{ClientID: "client-1"},
		&PutUser{User: User{Tenant: "acme", Username: "ålice", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", CreatedAt: 99}, Create: true},
		&DeleteUser{Tenant: "acme", Username: "ålice"},
		&Purge{Now: 1_700_000_000_000_000_000},
		&Noop{},
		&RememberConsent{Tenant: "acme", Username: "ålice", ClientID: "client-1", Scope: "openid profile"},
		&ForgetConsent{Tenant: "acme", Username: "ålice", ClientID: "client-1"},
		&StartSession{SID: h("sid"), Tenant: "acme", Username: "ålice", AuthTime: 1_700_000_000, ExpiresAt: math.MaxInt64},
		&EndSession{SID: h("sid")},
		&PutSigningKeys{IfGeneration: 1 << 40, Keys: []SigningKey{
			{ID: "k1", Alg: "ES256", Public: []byte(`{"kty":"EC"}`), Sealed: []byte{0, 1, 0xff}, State: KeyCurrent,
				CreatedAt: math.MinInt64, RetiredAt: 0, RemoveAt: math.MaxInt64},
			{ID: "k0", Alg: "RS256", Public: []byte(`{"kty":"RSA"}`), Sealed: []byte{9}, State: KeyRetired,
				CreatedAt: 1, RetiredAt: 2, RemoveAt: 3},
		}},
	}
}

// oidcCommands are commands that use encoding version 3 (OpenID Connect
// fields), with every such field set.
func oidcCommands() []Command {
	return []Command{
		&IssueGrant{ClientID: "client-1", Tenant: "acme", Username: "ålice", Scope: "openid", IssuedAt: 5,
			Code: TokenSpec{Hash: HashOf("oidc-code"), ExpiresAt: 1 << 62}, RedirectURI: "https://app.example/cb",
			Nonce: "n-0S6_WzA2Mj", AuthTime: 1_700_000_000},
		&IssueGrant{ClientID: "client-1", Access: TokenSpec{Hash: HashOf("oidc-implicit"), ExpiresAt: 1 << 62}, AuthTime: -1},
		&PutClient{Client: Client{ID: "client-1", AccessTokenFormat: "jwt", PostLogoutRedirectURIs: []string{"https://app.example/bye", ""}}},
		&PutClient{Client: Client{ID: "client-1", Introspect: true, PostLogoutRedirectURIs: []string{"x"}}, Create: true},
		&PutUser{User: User{Tenant: "acme", Username: "ålice", Name: "Ålice A", Email: "a@example.com",
			EmailVerified: true, PreferredUsername: "al"}, Create: true},
		&PutUser{User: User{Tenant: "acme", Username: "bob", EmailVerified: true}},
	}
}

func TestSampleCommandsCoverEveryOp(t *testing.T) {
	seen := map[op]bool{}
	for _, c := range sampleCommands() {
		seen[c.op()] = true
	}
	for o := opIssueGrant; o <= opLast; o++ {
		if !seen[o] {
			t.Errorf("op %d has no sample command", o)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	cmds := append(append(sampleCommands(), oidcCommands()...),
		// Zero values round trip too (nil slices stay nil).
		&IssueGrant{}, &RedeemCode{}, &RotateRefresh{}, &RevokeToken{}, &RevokeClient{},
		&RevokeSubject{}, &PutClient{}, &DeleteClient{}, &PutUser{}, &DeleteUser{}, &Purge{},
		&RememberConsent{}, &ForgetConsent{}, &StartSession{}, &EndSession{}, &PutSigningKeys{},
	)
	for _, c := range cmds {
		b := Encode(c)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: decode: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%T: round trip\n got %#v\nwant %#v", c, got, c)
		}
		if again := Encode(got); !bytes.Equal(again, b) {
			t.Errorf("%T: re-encoding differs", c)
		}
	}
}

func TestDecodeRejectsTruncated(t *testing.T) {
	for _, c := range append(sampleCommands(), oidcCommands()...) {
		b := Encode(c)
		for n := 0; n < len(b); n++ {
			if got, err := Decode(b[:n]); err == nil {
				t.Errorf("%T: prefix of %d/%d bytes decoded as %#v", c, n, len(b), got)
			}
		}
	}
}

func TestDecodeRejectsVersionOpTrailing(t *testing.T) {
	for _, c := range append(sampleCommands(), oidcCommands()...) {
		b := Encode(c)
		// Unknown versions, and the known versions Encode did not pick.
		bad := []byte{0, encodingVersionOIDC + 1, 0xff}
		for v := byte(encodingVersion); v <= encodingVersionOIDC; v++ {
			if v != b[0] {
				bad = append(bad, v)
			}
		}
		for _, v := range bad {
			bad := append([]byte{v}, b[1:]...)
			if _, err := Decode(bad); err == nil {
				t.Errorf("%T: version %d accepted", c, v)
			}
		}
		for _, extra := range [][]byte{{0}, {1, 2, 3}, b} {
			bad := append(append([]byte(nil), b...), extra...)
			if _, err := Decode(bad); err == nil {
				t.Errorf("%T: %d trailing bytes accepted", c, len(extra))
			}
		}
	}
	for _, o := range []byte{0, byte(opLast) + 1, 0x7f, 0xff} {
		if _, err := Decode([]byte{encodingVersion, o}); err == nil {
			t.Errorf("unknown op %d accepted", o)
		}
		if _, err := Decode([]byte{encodingVersion, o, 0, 0, 0}); err == nil {
			t.Errorf("unknown op %d with body accepted", o)
		}
	}
}

// v1PutClient is a PutClient as the version 1 encoder (before client
// flags) wrote it; replicas' logs hold entries like it.
const v1PutClient = "0107037376630f5265736f7572636520736572766572043a718774c572bd8a25adbeb1bfcd5c0256ae11cecf9f9c3f925d0e52beaf8900000112636c69656e745f63726564656e7469616c730104726561648080d0e2c6bfce972f80a8a69ccebfce972f0100"

// TestClientFlagsEncoding: a client without flags is written exactly as
// version 1 wrote it, so replicas that know only version 1 keep applying
// it; one with Introspect set is written in version 2, and every command
// has exactly one accepted encoding.
func TestClientFlagsEncoding(t *testing.T) {
	plain := &PutClient{Client: Client{ID: "svc", Name: "Resource server", SecretHash: HashOf("s"), GrantTypes: []string{"client_credentials"},
		Scopes: []string{"read"}, CreatedAt: 1_700_000_000_000_000_000, UpdatedAt: 1_700_000_001_000_000_000}, Create: true}
	old, _ := hex.DecodeString(v1PutClient)
	if got := Encode(plain); !bytes.Equal(got, old) {
		t.Fatalf("a client without flags encodes as\n%x\nnot as version 1 did\n%x", got, old)
	}
	c, err := Decode(old)
	if err != nil || !reflect.DeepEqual(c, plain) {
		t.Fatalf("version 1 PutClient: %v %#v", err, c)
	}

	rs := *plain
	rs.Client.Introspect = true
	b := Encode(&rs)
	if b[0] != encodingVersionFlags {
		t.Fatalf("a client with Introspect encodes in version %d", b[0])
	}
	// Version 2 is version 1 with the flags after UpdatedAt.
	want := append([]byte{encodingVersionFlags}, old[1:len(old)-2]...)
	want = append(want, clientFlagIntrospect, 1, 0)
	if !bytes.Equal(b, want) {
		t.Fatalf("version 2 PutClient\n%x\nwant\n%x", b, want)
	}
	if c, err := Decode(b); err != nil || !c.(*PutClient).Client.Introspect {
		t.Fatalf("version 2 PutClient: %v %#v", err, c)
	}
	flags := func(f byte) []byte {
		x := append([]byte(nil), b...)
		x[len(x)-3] = f
		return x
	}
	for name, bad := range map[string][]byte{
		"version 2 with no flag set": flags(0),
		"unknown flag":               flags(2),
		"unknown flag high":          flags(0x40),
		"version 1 with flags":       append([]byte{encodingVersion}, b[1:]...),
		"version 2 without flags":    append([]byte{encodingVersionFlags}, old[1:]...),
		"version 2 Noop":             {encodingVersionFlags, byte(opNoop)},
		"version 2 DeleteClient":     append([]byte{encodingVersionFlags}, Encode(&DeleteClient{ClientID: "svc"})[1:]...),
	} {
		if c, err := Decode(bad); err == nil {
			t.Errorf("%s: decoded as %#v", name, c)
		}
	}
	// Applying either version does what it says.
	f := New()
	if r := f.Apply(1, old); r.Outcome != OK {
		t.Fatal(r.Err())
	}
	if c, _ := f.Client("svc"); c.Introspect {
		t.Error("version 1 client may introspect")
	}
	rs.Create = false
	if r := f.Apply(2, Encode(&rs)); r.Outcome != OK {
		t.Fatal(r.Err())
	}
	if c, _ := f.Client("svc"); !c.Introspect {
		t.Error("Introspect lost on apply")
	}
	if g := roundTrip(t, f); func() bool { c, _ := g.Client("svc"); return !c.Introspect }() {
		t.Error("Introspect lost in a snapshot")
	}
}

func TestDecodeRejectsInvalidUTF8(t *testing.T) {
	bad := "ok\xff\xfe"
	cmds := []Command{
		&IssueGrant{ClientID: bad},
		&IssueGrant{Scope: bad},
		&IssueGrant{CodeChallenge: bad},
		&RedeemCode{RedirectURI: bad},
		&RotateRefresh{Scope: bad},
		&RevokeToken{ClientID: bad},
		&RevokeClient{ClientID: bad},
		&RevokeSubject{Username: bad},
		&PutClient{Client: Client{Name: bad}},
		&PutClient{Client: Client{RedirectURIs: []string{"fine", bad}}},
		&PutClient{Client: Client{Scopes: []string{bad}}},
		&DeleteClient{ClientID: bad},
		&PutUser{User: User{PasswordHash: bad}},
		&DeleteUser{Tenant: bad},
	}
	for _, c := range cmds {
		if got, err := Decode(Encode(c)); err == nil {
			t.Errorf("%T with invalid UTF-8 decoded as %#v", c, got)
		}
	}
}

func TestDecodeRejectsHugeLengths(t *testing.T) {
	hdr := func(o op) []byte { return []byte{encodingVersion, byte(o)} }
	uv := func(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
	cases := map[string][]byte{
		"string len 2^63":         append(uv(hdr(opRevokeClient), 1<<63), "abc"...),
		"string len max uint64":   uv(hdr(opRevokeClient), math.MaxUint64),
		"string len > input":      append(uv(hdr(opRevokeClient), 10), "abc"...),
		"string len maxString+1":  append(uv(hdr(opRevokeClient), maxString+1), strings.Repeat("a", maxString+1)...),
		"list count 2^40":         uv(append(uv(uv(hdr(opPutClient), 0), 0), make([]byte, 33)...), 1<<40),
		"varint 11 bytes":         append(hdr(opPurge), bytes.Repeat([]byte{0xff}, 11)...),
		"varint overflow 10th":    append(append(hdr(opPurge), bytes.Repeat([]byte{0xff}, 9)...), 0x02),
		"varint unterminated":     append(hdr(opPurge), 0x80, 0x80),
		"bool 2":                  append(Encode(&PutUser{})[:len(Encode(&PutUser{}))-1], 2),
		"client public flag 0x80": mutateClientPublic(0x80),
	}
	for name, b := range cases {
		if got, err := Decode(b); err == nil {
			t.Errorf("%s: decoded as %#v", name, got)
		}
	}
	// A string at exactly maxString is still accepted.
	ok := append(uv(hdr(opRevokeClient), maxString), strings.Repeat("a", maxString)...)
	if _, err := Decode(ok); err != nil {
		t.Errorf("string of maxString bytes rejected: %v", err)
	}
}

func mutateClientPublic(v byte) []byte {
	b := Encode(&PutClient{})
	// version, op, id len 0, name len 0, 32-byte hash, then the Public flag.
	b[2+1+1+32] = v
	return b
}

// TestDecodeRejectsOverlongVarints: a length, count or timestamp written
// with more bytes than it needs is not an encoding Encode produces, so it is
// refused; every accepted input has exactly one encoding.
func TestDecodeRejectsOverlongVarints(t *testing.T) {
	cases := map[string][]byte{
		"purge now 0 as 0x80 0x00":         {encodingVersion, byte(opPurge), 0x80, 0x00},
		"purge now 1 as 0x82 0x80 0x00":    {encodingVersion, byte(opPurge), 0x82, 0x80, 0x00},
		"revoke client len 0 as 0x80 0x00": {encodingVersion, byte(opRevokeClient), 0x80, 0x00},
	}
	for name, b := range cases {
		if got, err := Decode(b); err == nil {
			t.Errorf("%s: decoded as %#v (re-encodes to %x)", name, got, Encode(got))
		}
	}
	// Canonical multi-byte varints still decode.
	for _, v := range []int64{63, 64, -65, 1 << 20, math.MaxInt64, math.MinInt64} {
		b := Encode(&Purge{Now: v})
		c, err := Decode(b)
		if err != nil || c.(*Purge).Now != v {
			t.Errorf("purge %d: %v %#v", v, err, c)
		}
	}
}

func TestDecodeNeverPanicsOnMutations(t *testing.T) {
	for _, c := range sampleCommands() {
		b := Encode(c)
		for i := range b {
			for _, x := range []byte{0x00, 0x01, 0x7f, 0x80, 0xff} {
				m := append([]byte(nil), b...)
				m[i] = x
				if got, err := Decode(m); err == nil && !bytes.Equal(Encode(got), m) {
					t.Errorf("%T byte %d=%#x: decodes but re-encodes differently", c, i, x)
				}
			}
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	results := []Result{
		{},
		{Outcome: OK, Index: 1, GrantID: 1, IssuedCount: 1, Count: 0},
		{Outcome: Reused, Index: 1 << 40, GrantID: 77, IssuedCount: 3, Count: 9},
		{Outcome: BadCommand, Index: math.MaxUint64, GrantID: math.MaxUint64, IssuedCount: math.MaxUint64, Count: math.MaxUint64},
		{Outcome: OK, Index: 9, GrantID: 9, IssuedCount: 2, Scope: "openid read"},
		{Outcome: OK, Index: 1 << 40, Scope: "ß"},
	}
	for o := OK; o <= BadCommand; o++ {
		results = append(results, Result{Outcome: o, Index: uint64(o) * 1000})
	}
	for _, r := range results {
		b := EncodeResult(r)
		got, err := DecodeResult(b)
		if err != nil || got != r {
			t.Errorf("round trip %+v: got %+v, %v", r, got, err)
		}
		base := EncodeResult(Result{Outcome: r.Outcome, Index: r.Index, GrantID: r.GrantID, IssuedCount: r.IssuedCount, Count: r.Count})
		for n := 0; n < len(b); n++ {
			// The base form without the scope extension is the one
			// prefix that is a result of its own.
			if got, err := DecodeResult(b[:n]); err == nil && (n != len(base) || got.Scope != "") {
				t.Errorf("%+v: prefix %d/%d accepted", r, n, len(b))
			}
		}
		if _, err := DecodeResult(append(b, 0)); err == nil {
			t.Errorf("%+v: trailing byte accepted", r)
		}
	}
}

// TestResultEncodingCompatible: a result without a scope keeps the base
// form an older node reads (five fields, nothing after), the extension is
// refused when empty or unknown, and a scope must be UTF-8.
func TestResultEncodingCompatible(t *testing.T) {
	base := []byte{byte(Reused), 5, 6, 7, 8}
	if b := EncodeResult(Result{Outcome: Reused, Index: 5, GrantID: 6, IssuedCount: 7, Count: 8}); !bytes.Equal(b, base) {
		t.Errorf("base form %x, want %x", b, base)
	}
	withScope := append(append([]byte(nil), base...), resultExtScope, 4, 'r', 'e', 'a', 'd')
	if r, err := DecodeResult(withScope); err != nil || r.Scope != "read" {
		t.Errorf("extension: %+v %v", r, err)
	}
	for _, bad := range [][]byte{
		append(append([]byte(nil), base...), resultExtScope, 0),          // empty scope
		append(append([]byte(nil), base...), 2, 4, 'r', 'e', 'a', 'd'),   // unknown extension
		append(append([]byte(nil), base...), resultExtScope, 2, 0xff, 0), // not UTF-8
		append(append([]byte(nil), base...), resultExtScope),             // truncated
	} {
		if r, err := DecodeResult(bad); err == nil {
			t.Errorf("%x accepted as %+v", bad, r)
		}
	}
}

func TestOutcomeErr(t *testing.T) {
	if OK.Err() != nil || (Result{}).Err() != nil {
		t.Fatal("OK has an error")
	}
	want := map[Outcome]error{NotFound: ErrNotFound, WrongClient: ErrWrongClient, Revoked: ErrRevoked,
		Reused: ErrReused, Mismatch: ErrMismatch, Exists: ErrExists, BadCommand: ErrBadCommand}
	for o, e := range want {
		if o.Err() != e || (Result{Outcome: o}).Err() != e {
			t.Errorf("outcome %d: %v", o, o.Err())
		}
	}
	if Outcome(200).Err() == nil {
		t.Error("unknown outcome has no error")
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range append(sampleCommands(), oidcCommands()...) {
		f.Add(Encode(c))
	}
	f.Add([]byte{})
	f.Add([]byte{encodingVersion})
	f.Add([]byte{encodingVersion, byte(opPurge), 0x80, 0x00})
	v1, _ := hex.DecodeString(v1PutClient)
	f.Add(v1)
	f.Add(append([]byte{encodingVersionFlags}, v1[1:]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			if c != nil {
				t.Fatalf("error %v with a command %#v", err, c)
			}
			return
		}
		b := Encode(c)
		if !bytes.Equal(b, data) {
			t.Fatalf("decoded %#v re-encodes to\n%x\nnot\n%x", c, b, data)
		}
		c2, err := Decode(b)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("second decode: %v %#v vs %#v", err, c2, c)
		}
	})
}

// fuzzFixture is a small state with a client, a user and a grant whose
// token hashes the seed corpus refers to, so mutated commands reach the
// conditional paths of Apply and not only NotFound.
func fuzzFixture() *FSM {
	f := New()
	cmds := []Command{
		&PutClient{Client: Client{ID: "client-1", Scopes: []string{"read"}}, Create: true},
		&PutUser{User: User{Tenant: "acme", Username: "ålice"}, Create: true},
		&IssueGrant{ClientID: "client-1", Tenant: "acme", Username: "ålice", Scope: "openid profile read", IssuedAt: 0,
			Code: TokenSpec{HashOf("code"), 1 << 62}, Access: TokenSpec{HashOf("access"), 1 << 62},
			Refresh: TokenSpec{HashOf("refresh"), 1 << 62}, RedirectURI: "https://app.example/cb?x=1",
			CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		&IssueGrant{ClientID: "client-1", IssuedAt: 0, Access: TokenSpec{HashOf("cc"), 1 << 62}},
		// OpenID Connect state, so mutated new commands meet existing
		// records (the sample StartSession's SID, a key set at generation 1).
		&PutUser{User: User{Tenant: "acme", Username: "bob", Name: "Bob", EmailVerified: true}, Create: true},
		&PutClient{Client: Client{ID: "rp", AccessTokenFormat: "jwt", PostLogoutRedirectURIs: []string{"https://rp/bye"}}, Create: true},
		&RememberConsent{Tenant: "acme", Username: "ålice", ClientID: "client-1", Scope: "openid"},
		&RememberConsent{Tenant: "acme", Username: "bob", ClientID: "rp", Scope: "openid email"},
		&StartSession{SID: HashOf("sid"), Tenant: "acme", Username: "ålice", AuthTime: 1, ExpiresAt: 1 << 62},
		&StartSession{SID: HashOf("sid2"), Tenant: "acme", Username: "bob", AuthTime: 2, ExpiresAt: 50},
		&IssueGrant{ClientID: "rp", Tenant: "acme", Username: "bob", Scope: "openid", IssuedAt: 0,
			Code: TokenSpec{HashOf("fx-code"), 1 << 62}, RedirectURI: "https://rp/cb", Nonce: "nonce", AuthTime: 2},
		&PutSigningKeys{Keys: []SigningKey{
			{ID: "k1", Alg: "ES256", Public: []byte("{}"), Sealed: []byte{1}, State: KeyCurrent},
			{ID: "k0", Alg: "ES256", Public: []byte("{}"), Sealed: []byte{2}, State: KeyRetired, RetiredAt: 1, RemoveAt: 40},
		}},
	}
	for i, c := range cmds {
		f.Apply(uint64(i+1), Encode(c))
	}
	return f
}

// indexedKeys lists every key held in f's token index.
func indexedKeys(f *FSM) []key {
	var hs []key
	for i := range f.tokens.shards {
		for h := range f.tokens.shards[i].records() {
			hs = append(hs, h)
		}
	}
	return hs
}

// oidcFuzzSeeds are commands that meet fuzzFixture's OpenID records: a
// valid and an invalid key set at its generation, consents, sessions and
// the cascades of deleting their user or client, purges of the expiring
// session and key.
func oidcFuzzSeeds() []Command {
	return []Command{
		&PutSigningKeys{IfGeneration: 1, Keys: []SigningKey{{ID: "k2", Alg: "RS256", Public: []byte("{}"), Sealed: []byte{3}, State: KeyNext}}},
		&PutSigningKeys{IfGeneration: 1, Keys: []SigningKey{{ID: "k2", Alg: "RS256", Public: []byte("{}"), Sealed: []byte{3}, State: 7}}},
		&RememberConsent{Tenant: "acme", Username: "bob", ClientID: "client-1", Scope: "profile openid"},
		&ForgetConsent{Tenant: "acme", Username: "bob", ClientID: "rp"},
		&EndSession{SID: HashOf("sid2")},
		&DeleteUser{Tenant: "acme", Username: "bob"},
		&DeleteClient{ClientID: "rp"},
		&Purge{Now: 45},
		&RotateRefresh{Old: HashOf("refresh"), ClientID: "client-1", Now: 1, Access: TokenSpec{HashOf("a9"), 1 << 62}, Refresh: TokenSpec{HashOf("r9"), 1 << 62}},
	}
}

func FuzzApply(f *testing.F) {
	for _, c := range append(sampleCommands(), oidcCommands()...) {
		f.Add(Encode(c))
	}
	f.Add([]byte{})
	f.Add([]byte{encodingVersion, 0xff})
	f.Add([]byte{2, byte(opNoop)})
	for _, c := range oidcFuzzSeeds() {
		f.Add(Encode(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := fuzzFixture()
		before := digest(fs)
		const idx = 1000
		r := fs.Apply(idx, data)
		if r.Index != idx || fs.AppliedIndex() != idx {
			t.Fatalf("index: result %d, applied %d", r.Index, fs.AppliedIndex())
		}
		if got, err := DecodeResult(EncodeResult(r)); err != nil || got != r {
			t.Fatalf("result %+v forwards as %+v, %v", r, got, err)
		}
		c, err := Decode(data)
		if err != nil {
			if r.Outcome != BadCommand {
				t.Fatalf("undecodable input: outcome %d", r.Outcome)
			}
			if digest(fs) != before {
				t.Fatal("undecodable input changed the state")
			}
			return
		}
		if r.Outcome == BadCommand {
			t.Fatalf("decodable input reported BadCommand")
		}
		switch c.(type) {
		case *DeleteClient, *DeleteUser:
			// A NotFound delete still clears the counter of that name.
		default:
			if r.Outcome != OK && r.Outcome != Reused && digest(fs) != before {
				t.Fatalf("outcome %d changed the state:\n%s", r.Outcome, diffLines(before, digest(fs)))
			}
		}
		// The state must still serve reads and survive a snapshot with
		// the same behaviour.
		var buf bytes.Buffer
		fs.Snapshot().WriteTo(&buf)
		g := New()
		if err := g.Restore(&buf); err != nil {
			t.Fatalf("restore after apply: %v", err)
		}
		hs := append(indexedKeys(fs), indexedKeys(g)...)
		for _, now := range []int64{-1 << 62, 0, 43, 1 << 61} {
			for _, h := range hs {
				t1, ok1 := fs.lookupKey(h, now)
				t2, ok2 := g.lookupKey(h, now)
				if ok1 != ok2 || t1 != t2 {
					t.Fatalf("lookup %x at %d: %v %+v vs restored %v %+v", h[:4], now, ok1, t1, ok2, t2)
				}
			}
		}
		if fs.AppliedIndex() != g.AppliedIndex() || !reflect.DeepEqual(fs.Clients(), g.Clients()) || !reflect.DeepEqual(fs.Users(), g.Users()) {
			t.Fatal("restored clients, users or index differ")
		}
		if a, b := oidcDigest(fs), oidcDigest(g); a != b {
			t.Fatalf("restored OpenID state differs:\n%s", diffLines(a, b))
		}
	})
}
