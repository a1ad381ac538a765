package fsm

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// digestOIDC renders the OpenID Connect state for digest (f.mu held).
func digestOIDC(f *FSM) []string {
	var lines []string
	for k, m := range f.consents {
		for client, scope := range m {
			lines = append(lines, fmt.Sprintf("consent %q/%q %q %q", k.tenant, k.username, client, scope))
		}
	}
	for sid, s := range f.sessions {
		lines = append(lines, fmt.Sprintf("session %x %+v", sid[:6], s))
	}
	for k, set := range f.userSessions {
		ids := make([]string, 0, len(set))
		for sid := range set {
			ids = append(ids, fmt.Sprintf("%x", sid[:6]))
		}
		slices.Sort(ids)
		lines = append(lines, fmt.Sprintf("userSessions %q/%q %v", k.tenant, k.username, ids))
	}
	lines = append(lines, fmt.Sprintf("keys gen=%d", f.keyGen))
	for i, k := range f.keys {
		lines = append(lines, fmt.Sprintf("key %d %q %q %x %x %v %d %d %d", i, k.ID, k.Alg, k.Public, k.Sealed, k.State, k.CreatedAt, k.RetiredAt, k.RemoveAt))
	}
	return lines
}

// oidcDigest is digestOIDC, sorted, as one string.
func oidcDigest(f *FSM) string {
	f.mu.RLock()
	lines := digestOIDC(f)
	f.mu.RUnlock()
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func testKey(id, alg string, st KeyState) SigningKey {
	return SigningKey{ID: id, Alg: alg, Public: []byte(`{"kid":"` + id + `"}`), Sealed: []byte("sealed-" + id), State: st, CreatedAt: t0}
}

func TestUserClaimsAndClientFields(t *testing.T) {
	e := newEnv(t)
	u := User{Tenant: "t", Username: "carol", PasswordHash: "h", CreatedAt: t0, Name: "Carol C", Email: "c@example.com",
		EmailVerified: true, PreferredUsername: "cc"}
	e.ok(&PutUser{User: u, Create: true})
	if got, _ := e.f.User("t", "carol"); *got != u {
		t.Fatalf("user %+v", *got)
	}
	u.Name, u.EmailVerified = "", false
	e.ok(&PutUser{User: u})
	if got, _ := e.f.User("t", "carol"); *got != u {
		t.Fatalf("updated user %+v", *got)
	}
	c := Client{ID: "rp", AccessTokenFormat: "jwt", PostLogoutRedirectURIs: []string{"https://rp/bye"}, CreatedAt: t0}
	cmd := &PutClient{Client: c, Create: true}
	e.ok(cmd)
	cmd.Client.PostLogoutRedirectURIs[0] = "changed" // the state keeps its own copy
	if got, _ := e.f.Client("rp"); got.AccessTokenFormat != "jwt" || !slices.Equal(got.PostLogoutRedirectURIs, []string{"https://rp/bye"}) {
		t.Fatalf("client %+v", *got)
	}
	g := roundTrip(t, e.f)
	if got, _ := g.User("t", "carol"); *got != u {
		t.Fatalf("restored user %+v", *got)
	}
	if got, _ := g.Client("rp"); got.AccessTokenFormat != "jwt" || len(got.PostLogoutRedirectURIs) != 1 {
		t.Fatalf("restored client %+v", *got)
	}
}

// TestOlderEncodingsUnchanged: commands that set no OpenID field are
// written in the version older replicas read.
func TestOlderEncodingsUnchanged(t *testing.T) {
	for _, c := range sampleCommands() {
		if b := Encode(c); b[0] == encodingVersionOIDC {
			t.Errorf("%T without OpenID fields written in version %d", c, b[0])
		}
	}
	for _, c := range oidcCommands() {
		if b := Encode(c); b[0] != encodingVersionOIDC {
			t.Errorf("%T with OpenID fields written in version %d", c, b[0])
		}
	}
}

func TestGrantSignIn(t *testing.T) {
	e := newEnv(t)
	code := HashOf("oidc/code")
	e.ok(&IssueGrant{ClientID: "c1", Tenant: "t", Username: "alice", Scope: "openid", IssuedAt: t0,
		Code: spec(code, t0+codeL), RedirectURI: "https://app/cb", Nonce: "n1", AuthTime: 1_700_000_000})
	want := func(h Hash, now int64) {
		t.Helper()
		tok, ok := e.f.Lookup(h, now)
		if !ok || tok.Nonce != "n1" || tok.AuthTime != 1_700_000_000 {
			t.Fatalf("lookup %v %+v", ok, tok)
		}
	}
	want(code, t0)
	p := tokensFor("oidc")
	e.ok(redeem(code, "c1", "https://app/cb", "", t0+sec, p))
	want(p.access, t0+sec)
	want(p.refresh, t0+sec)
	if h, ok := e.f.Holder(code); !ok || h.Nonce != "n1" || h.Kind != KindCode {
		t.Fatalf("holder of the redeemed code %v %+v", ok, h)
	}
	p2 := tokensFor("oidc2")
	rr := e.rotate(p.refresh, "c1", "", t0+2*sec, 0, p2)
	e.ok(&rr)
	want(p2.access, t0+2*sec)
	// An implicit sign-in: no code, still a sign-in.
	imp := HashOf("implicit")
	e.ok(&IssueGrant{ClientID: "c1", Tenant: "t", Username: "bob", IssuedAt: t0, Access: spec(imp, t0+accessL), Nonce: "n2"})
	if tok, _ := e.f.Lookup(imp, t0); tok.Nonce != "n2" || tok.AuthTime != 0 {
		t.Fatalf("implicit %+v", tok)
	}
	// Other grants carry nothing and hold no binding at all.
	cc, _ := e.issue("cc", "c2", "", "", "api", t0)
	if tok, _ := e.f.Lookup(cc.access, t0); tok.Nonce != "" || tok.AuthTime != 0 {
		t.Fatalf("client credentials %+v", tok)
	}
	r, _ := e.f.tokens.get(keyOf(cc.access))
	if r.grant.code != nil {
		t.Fatal("a plain grant has a binding")
	}
	g := roundTrip(t, e.f)
	sameLookups(t, []Hash{code, p.access, p2.access, p2.refresh, imp, cc.access}, []int64{t0, t0 + 2*sec}, e.f, g)
}

func TestConsent(t *testing.T) {
	e := newEnv(t)
	e.expectNoChange(&RememberConsent{Tenant: "t", Username: "nobody", ClientID: "c1", Scope: "openid"}, NotFound)
	e.expectNoChange(&RememberConsent{Tenant: "t", Username: "alice", ClientID: "nope", Scope: "openid"}, NotFound)
	e.ok(&RememberConsent{Tenant: "t", Username: "alice", ClientID: "c1", Scope: "openid  profile"})
	e.ok(&RememberConsent{Tenant: "t", Username: "alice", ClientID: "c1", Scope: "email openid"})
	e.ok(&RememberConsent{Tenant: "t", Username: "alice", ClientID: "c2", Scope: "openid"})
	e.ok(&RememberConsent{Tenant: "t", Username: "bob", ClientID: "c1", Scope: "openid"})
	e.ok(&RememberConsent{Tenant: "t2", Username: "alice", ClientID: "c1", Scope: " "}) // nothing to remember
	if s, ok := e.f.Consent("t", "alice", "c1"); !ok || s != "openid profile email" {
		t.Fatalf("consent %q %v", s, ok)
	}
	if _, ok := e.f.Consent("t2", "alice", "c1"); ok {
		t.Fatal("an empty scope was remembered")
	}
	if e.f.ConsentCount() != 3 {
		t.Fatalf("%d consents", e.f.ConsentCount())
	}
	roundTrip(t, e.f)
	e.ok(&ForgetConsent{Tenant: "t", Username: "alice", ClientID: "c2"})
	e.expectNoChange(&ForgetConsent{Tenant: "t", Username: "alice", ClientID: "c2"}, NotFound)
	if _, ok := e.f.Consent("t", "alice", "c2"); ok {
		t.Fatal("forgotten consent remains")
	}
	// Deleting the client forgets its consents; deleting the user theirs,
	// and a user created again under the name starts with none.
	e.ok(&DeleteClient{ClientID: "c1"})
	if _, ok := e.f.Consent("t", "bob", "c1"); ok || e.f.ConsentCount() != 0 {
		t.Fatalf("consents of a deleted client remain: %d", e.f.ConsentCount())
	}
	e.ok(&RememberConsent{Tenant: "t", Username: "bob", ClientID: "c2", Scope: "openid"})
	e.ok(&DeleteUser{Tenant: "t", Username: "bob"})
	e.ok(&PutUser{User: User{Tenant: "t", Username: "bob"}, Create: true})
	if _, ok := e.f.Consent("t", "bob", "c2"); ok {
		t.Fatal("consent survived its user")
	}
	roundTrip(t, e.f)
}

func TestSessions(t *testing.T) {
	e := newEnv(t)
	sid := func(n int) Hash { return HashOf(fmt.Sprint("cookie", n)) }
	start := func(n int, user string, exp int64) *StartSession {
		return &StartSession{SID: sid(n), Tenant: "t", Username: user, AuthTime: 1_700_000_000 + int64(n), ExpiresAt: exp}
	}
	e.expectNoChange(&StartSession{Tenant: "t", Username: "alice", ExpiresAt: t0 + hour}, Invalid)
	e.expectNoChange(start(1, "nobody", t0+hour), NotFound)
	e.ok(start(1, "alice", t0+hour))
	e.expectNoChange(start(1, "bob", t0+hour), Exists)
	e.ok(start(2, "alice", t0+minute))
	e.ok(start(3, "bob", t0+hour))
	s, ok := e.f.SessionAt(sid(1), t0)
	if want := (Session{Tenant: "t", Username: "alice", AuthTime: 1_700_000_001, ExpiresAt: t0 + hour}); !ok || s != want {
		t.Fatalf("session %+v %v", s, ok)
	}
	if _, ok := e.f.SessionAt(sid(2), t0+minute); ok {
		t.Fatal("expired session read")
	}
	if _, ok := e.f.Session(sid(1)); ok { // the wall clock is years past t0+hour
		t.Fatal("Session ignores expiry")
	}
	roundTrip(t, e.f)
	e.ok(&Purge{Now: t0 + minute})
	if e.f.SessionCount() != 2 {
		t.Fatalf("%d sessions after purge", e.f.SessionCount())
	}
	e.ok(&EndSession{SID: sid(3)})
	e.expectNoChange(&EndSession{SID: sid(3)}, NotFound)
	if _, ok := e.f.SessionAt(sid(3), t0); ok {
		t.Fatal("ended session read")
	}
	e.ok(start(4, "alice", t0+hour))
	e.ok(&DeleteUser{Tenant: "t", Username: "alice"})
	if e.f.SessionCount() != 0 || len(e.f.userSessions) != 0 {
		t.Fatalf("sessions of a deleted user remain: %d", e.f.SessionCount())
	}
	roundTrip(t, e.f)
}

func TestSigningKeys(t *testing.T) {
	e := newEnv(t)
	set := []SigningKey{testKey("a", "ES256", KeyCurrent), testKey("b", "ES256", KeyNext), testKey("r", "RS256", KeyCurrent)}
	if r := e.ok(&PutSigningKeys{Keys: set}); r.Count != 1 {
		t.Fatalf("generation %d", r.Count)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, &PutSigningKeys{Keys: set}); strings.Contains(out, "sealed-") || strings.Contains(out, "115 101 97") {
			t.Errorf("%s prints sealed bytes: %s", format, out)
		}
	}
	set[0].Public[0] = 'X' // the state keeps its own bytes
	keys, gen := e.f.SigningKeys()
	if gen != 1 || len(keys) != 3 || keys[0].Public[0] != '{' {
		t.Fatalf("keys %d at generation %d", len(keys), gen)
	}
	keys[0].ID = "mine" // the caller's copy
	if k, _ := e.f.SigningKeys(); k[0].ID != "a" {
		t.Fatal("SigningKeys hands out the state's slice")
	}
	// A writer that read generation 0 lost the race.
	if r := e.expectNoChange(&PutSigningKeys{Keys: set[:1], IfGeneration: 0}, Conflict); r.Count != 1 {
		t.Fatalf("conflict reports generation %d", r.Count)
	}
	bad := func(mut func(k []SigningKey) []SigningKey) {
		t.Helper()
		k := mut([]SigningKey{testKey("a", "ES256", KeyCurrent), testKey("b", "RS256", KeyNext)})
		if ValidateSigningKeys(k) == nil {
			t.Errorf("ValidateSigningKeys accepted %+v", k)
		}
		e.expectNoChange(&PutSigningKeys{Keys: k, IfGeneration: 1}, Invalid)
	}
	bad(func(k []SigningKey) []SigningKey { k[0].ID = ""; return k })
	bad(func(k []SigningKey) []SigningKey { k[0].Alg = ""; return k })
	bad(func(k []SigningKey) []SigningKey { k[1].Public = nil; return k })
	bad(func(k []SigningKey) []SigningKey { k[1].Sealed = []byte{}; return k })
	bad(func(k []SigningKey) []SigningKey { k[1].State = 0; return k })
	bad(func(k []SigningKey) []SigningKey { k[1].State = KeyRetired + 1; return k })
	bad(func(k []SigningKey) []SigningKey { k[1].ID = "a"; return k })
	bad(func(k []SigningKey) []SigningKey { k[1].Alg, k[1].State = "ES256", KeyCurrent; return k })
	bad(func(k []SigningKey) []SigningKey {
		for i := range maxSigningKeys {
			k = append(k, testKey(fmt.Sprint("x", i), "ES256", KeyNext))
		}
		return k
	})
	// Rotate: b signs, a retires until t0+hour.
	rot := []SigningKey{testKey("b", "ES256", KeyCurrent), testKey("a", "ES256", KeyRetired), testKey("r", "RS256", KeyCurrent)}
	rot[1].RetiredAt, rot[1].RemoveAt = t0, t0+hour
	if r := e.ok(&PutSigningKeys{Keys: rot, IfGeneration: 1}); r.Count != 2 {
		t.Fatalf("generation %d", r.Count)
	}
	roundTrip(t, e.f)
	e.ok(&Purge{Now: t0 + hour - 1})
	if k, gen := e.f.SigningKeys(); len(k) != 3 || gen != 2 {
		t.Fatalf("early purge: %d keys at generation %d", len(k), gen)
	}
	e.ok(&Purge{Now: t0 + hour})
	k, gen := e.f.SigningKeys()
	if gen != 3 || len(k) != 2 || k[0].ID != "b" || k[1].ID != "r" {
		t.Fatalf("purge left %+v at generation %d", k, gen)
	}
	roundTrip(t, e.f)
}

// oidcState is a state with every kind of OpenID Connect record.
func oidcState(t *testing.T) *env {
	e := newEnv(t)
	e.ok(&PutUser{User: User{Tenant: "t", Username: "carol", Name: "C", Email: "c@x", EmailVerified: true, PreferredUsername: "c"}, Create: true})
	e.ok(&PutClient{Client: Client{ID: "rp", AccessTokenFormat: "jwt", PostLogoutRedirectURIs: []string{"https://rp/bye"}}, Create: true})
	e.ok(&RememberConsent{Tenant: "t", Username: "carol", ClientID: "rp", Scope: "openid email"})
	e.ok(&RememberConsent{Tenant: "t", Username: "alice", ClientID: "c1", Scope: "openid"})
	e.ok(&StartSession{SID: HashOf("s1"), Tenant: "t", Username: "carol", AuthTime: 5, ExpiresAt: t0 + hour})
	e.ok(&StartSession{SID: HashOf("s2"), Tenant: "t", Username: "carol", AuthTime: 6, ExpiresAt: t0 + hour})
	e.ok(&IssueGrant{ClientID: "rp", Tenant: "t", Username: "carol", Scope: "openid", IssuedAt: t0,
		Code: spec(HashOf("rich-code"), t0+codeL), RedirectURI: "https://rp/cb", Nonce: "nn", AuthTime: 5})
	e.ok(&IssueGrant{ClientID: "rp", Tenant: "t", Username: "carol", IssuedAt: t0, Access: spec(HashOf("rich-imp"), t0+accessL), AuthTime: 7})
	retired := testKey("old", "ES256", KeyRetired)
	retired.RetiredAt, retired.RemoveAt = t0, t0+hour
	e.ok(&PutSigningKeys{Keys: []SigningKey{testKey("cur", "ES256", KeyCurrent), retired, testKey("nx", "ES256", KeyNext)}})
	return e
}

func TestSnapshotOIDC(t *testing.T) {
	e := oidcState(t)
	g := roundTrip(t, e.f)
	for _, f := range []*FSM{e.f, g} {
		if s, ok := f.Consent("t", "carol", "rp"); !ok || s != "openid email" {
			t.Fatalf("consent %q %v", s, ok)
		}
		if s, ok := f.SessionAt(HashOf("s2"), t0); !ok || s.AuthTime != 6 {
			t.Fatalf("session %+v %v", s, ok)
		}
		if tok, ok := f.Lookup(HashOf("rich-code"), t0); !ok || tok.Nonce != "nn" || tok.AuthTime != 5 {
			t.Fatalf("sign-in %+v %v", tok, ok)
		}
	}
	ka, ga := e.f.SigningKeys()
	kb, gb := g.SigningKeys()
	if ga != gb || !slices.EqualFunc(ka, kb, func(a, b SigningKey) bool {
		return a.ID == b.ID && a.Alg == b.Alg && bytes.Equal(a.Public, b.Public) && bytes.Equal(a.Sealed, b.Sealed) &&
			a.State == b.State && a.CreatedAt == b.CreatedAt && a.RetiredAt == b.RetiredAt && a.RemoveAt == b.RemoveAt
	}) {
		t.Fatalf("keys %+v/%d restored as %+v/%d", ka, ga, kb, gb)
	}
	st := g.Stats(t0)
	if st.Consents != 2 || st.Sessions != 2 || st.SigningKeys != 3 {
		t.Fatalf("stats %+v", st)
	}
	// A snapshot is a point in time: later OpenID changes are not in it.
	s := e.f.Snapshot()
	e.ok(&RememberConsent{Tenant: "t", Username: "carol", ClientID: "rp", Scope: "profile"})
	e.ok(&EndSession{SID: HashOf("s1")})
	e.ok(&PutSigningKeys{IfGeneration: 1})
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	s.Release()
	h := New()
	if err := h.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	sameState(t, g, h)
}

// TestRestoreRejectsInconsistentOIDC: an image whose OpenID records
// could not come from Apply is refused.
func TestRestoreRejectsInconsistentOIDC(t *testing.T) {
	for name, spoil := range map[string]func(f *FSM){
		"consent of no user":   func(f *FSM) { f.consents[userKey{"t", "ghost"}] = map[string]string{"c1": "openid"} },
		"consent of no client": func(f *FSM) { f.consents[userKey{"t", "alice"}]["ghost"] = "openid" },
		"consent scope empty":  func(f *FSM) { f.consents[userKey{"t", "alice"}]["c1"] = "" },
		"consent scope form":   func(f *FSM) { f.consents[userKey{"t", "alice"}]["c1"] = "a  b" },
		"session of no user":   func(f *FSM) { f.sessions[HashOf("x")] = Session{Tenant: "t", Username: "ghost"} },
		"session zero id":      func(f *FSM) { f.sessions[Hash{}] = Session{Tenant: "t", Username: "alice"} },
		"keys invalid":         func(f *FSM) { f.keys = append(slices.Clone(f.keys), testKey("cur", "RS256", KeyNext)) },
		"keys unknown state":   func(f *FSM) { f.keys = []SigningKey{testKey("z", "ES256", 9)} },
		"keys at generation 0": func(f *FSM) { f.keyGen = 0 },
		"empty sign-in": func(f *FSM) {
			r, _ := f.tokens.get(keyOf(HashOf("rich-imp")))
			r.grant.code.signIn = &signIn{}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := oidcState(t)
			spoil(e.f)
			img := snapshotBytes(t, e.f)
			if err := New().Restore(bytes.NewReader(img)); err == nil {
				t.Fatal("restored")
			}
		})
	}
}

// TestOIDCDeterminism: replicas applying the same OpenID commands reach
// the same state.
func TestOIDCDeterminism(t *testing.T) {
	a, b := oidcState(t), oidcState(t)
	sameState(t, a.f, b.f)
	if !maps.Equal(a.f.sessions, b.f.sessions) {
		t.Fatal("sessions differ")
	}
}

// TestOIDCConcurrentReads: the OpenID reads run while Apply changes what
// they read and snapshots are taken (run with -race).
func TestOIDCConcurrentReads(t *testing.T) {
	e := oidcState(t)
	stop := make(chan struct{})
	done := make(chan int)
	for range 2 {
		go func() {
			n := 0
			for {
				select {
				case <-stop:
					done <- n
					return
				default:
				}
				e.f.Consent("t", "carol", "rp")
				e.f.SessionAt(HashOf("s1"), t0)
				if keys, _ := e.f.SigningKeys(); len(keys) > 0 && len(keys[0].Sealed) == 0 {
					panic("torn key")
				}
				e.f.Lookup(HashOf("rich-code"), t0)
				_, _ = e.f.User("t", "carol")
				n++
			}
		}()
	}
	for i := range 300 {
		sid := HashOf(fmt.Sprint("c", i))
		e.ok(&StartSession{SID: sid, Tenant: "t", Username: "carol", ExpiresAt: t0 + int64(i)})
		e.ok(&RememberConsent{Tenant: "t", Username: "carol", ClientID: "rp", Scope: fmt.Sprint("s", i%7)})
		_, gen := e.f.SigningKeys()
		e.ok(&PutSigningKeys{Keys: []SigningKey{testKey(fmt.Sprint("k", i), "ES256", KeyCurrent)}, IfGeneration: gen})
		if i%50 == 0 {
			s := e.f.Snapshot()
			var buf bytes.Buffer
			if _, err := s.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			s.Release()
			e.ok(&Purge{Now: t0 + int64(i)})
		}
	}
	close(stop)
	if n := <-done + <-done; n == 0 {
		t.Fatal("readers never ran")
	}
}
