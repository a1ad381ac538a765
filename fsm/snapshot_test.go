package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	s := f.Snapshot()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || int(n) != buf.Len() {
		t.Fatalf("WriteTo: %d, %v; wrote %d", n, err, buf.Len())
	}
	return buf.Bytes()
}

// roundTrip restores a snapshot of f into a new FSM and checks it is equal.
func roundTrip(t testing.TB, f *FSM) *FSM {
	t.Helper()
	g := New()
	if err := g.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	sameState(t, f, g)
	return g
}

func sameState(t testing.TB, a, b *FSM) {
	t.Helper()
	if da, db := digest(a), digest(b); da != db {
		t.Fatalf("states differ:\n%s", diffLines(da, db))
	}
	if a.AppliedIndex() != b.AppliedIndex() {
		t.Fatalf("applied index %d vs %d", a.AppliedIndex(), b.AppliedIndex())
	}
	if a.LiveTokens() != b.LiveTokens() {
		t.Fatalf("LiveTokens %d vs %d", a.LiveTokens(), b.LiveTokens())
	}
	if !reflect.DeepEqual(a.Clients(), b.Clients()) {
		t.Fatalf("clients differ")
	}
	if !reflect.DeepEqual(a.Users(), b.Users()) {
		t.Fatalf("users differ")
	}
	checkInvariants(t, b)
}

// richState builds a state with every kind of token record: active,
// rotated-out (within and past grace), orphaned by a grace retry, redeemed
// and pending codes, narrowed
// scopes, revoked grants, purged tokens.
type richState struct {
	e      *env
	hashes []Hash
	p      map[string]pair
	codes  map[string]Hash
}

func newRichState(t *testing.T) *richState {
	e := newEnv(t)
	s := &richState{e: e, p: map[string]pair{}, codes: map[string]Hash{}}
	add := func(name string, p pair) { s.p[name] = p; s.hashes = append(s.hashes, p.access, p.refresh) }
	iss := func(name, client, tenant, user, scope string) {
		p, _ := e.issue(name, client, tenant, user, scope, t0)
		add(name, p)
	}
	e.ok(&PutClient{Client: Client{ID: "rs", Name: "resource server", SecretHash: HashOf("rs"), Introspect: true, CreatedAt: t0}, Create: true})
	iss("active", "c1", "t", "alice", "read write")
	iss("cc", "c2", "", "", "api")
	iss("rot", "c1", "t", "bob", "read write profile")
	add("rot1", tokensFor("rot1"))
	c := e.rotate(s.p["rot"].refresh, "c1", "read", t0+minute, 30*sec, s.p["rot1"]) // narrowed access
	e.ok(&c)
	// A grace retry: retried1 is superseded before use (an orphan).
	iss("retried", "c2", "t", "alice", "read")
	add("retried1", tokensFor("retried1"))
	add("retried2", tokensFor("retried2"))
	c = e.rotate(s.p["retried"].refresh, "c2", "", t0+minute, 30*sec, s.p["retried1"])
	e.ok(&c)
	c = e.rotate(s.p["retried"].refresh, "c2", "", t0+minute+sec, 30*sec, s.p["retried2"])
	e.ok(&c)
	iss("revoked", "c2", "t2", "alice", "read")
	e.ok(&RevokeToken{Token: s.p["revoked"].access})
	for _, name := range []string{"redeemed", "pending"} {
		code, _ := codeGrant(e, name, "c1", "https://app/cb", "chal", t0+minute)
		s.codes[name] = code
		s.hashes = append(s.hashes, code)
	}
	add("redeemed-tokens", tokensFor("redeemed-tokens"))
	e.ok(redeem(s.codes["redeemed"], "c1", "https://app/cb", "chal", t0+minute+sec, s.p["redeemed-tokens"]))
	iss("short", "c1", "t", "alice", "")
	e.ok(&Purge{Now: t0 + 30*sec}) // nothing expires yet
	return s
}

func TestSnapshotRestoreRich(t *testing.T) {
	s := newRichState(t)
	a := s.e.f
	b := roundTrip(t, a)
	nows := []int64{t0, t0 + minute, t0 + minute + 30*sec, t0 + 2*minute, t0 + accessL, t0 + refresL, t0 + refresL + hour}
	sameLookups(t, s.hashes, nows, a, b)
	// Spot-check the interesting records survived with their state.
	eb := &env{t: t, f: b, idx: s.e.idx}
	eb.wantInvalid(t0+minute+30*sec, s.p["rot"].refresh, s.codes["redeemed"], s.p["revoked"].refresh)
	eb.wantValid(t0+minute+30*sec, s.p["rot1"].access, s.codes["pending"], s.p["redeemed-tokens"].access)
	if tok, _ := b.Lookup(s.p["rot1"].access, t0+2*minute); tok.Scope != "read" {
		t.Errorf("narrowed scope lost: %+v", tok)
	}
	for _, subj := range []string{"t/alice", "t/bob", "c2", "c1", "t2/alice"} {
		n1, l1 := a.IssueCount(subj)
		n2, l2 := b.IssueCount(subj)
		if n1 != n2 || l1 != l2 {
			t.Errorf("counter %q: %d,%d vs %d,%d", subj, n1, l1, n2, l2)
		}
	}

	// Continue both with commands whose outcome depends on restored state.
	x := func(name string) pair {
		p := tokensFor(name)
		s.hashes = append(s.hashes, p.access, p.refresh)
		return p
	}
	rotRetry := s.e.rotate(s.p["rot"].refresh, "c1", "", t0+minute+20*sec, 30*sec, x("retry")) // within grace
	rotLate := s.e.rotate(s.p["rot"].refresh, "c1", "", t0+minute+31*sec, 30*sec, x("late"))   // reuse
	cmds := []Command{
		&rotRetry,
		redeem(s.codes["redeemed"], "c1", "https://app/cb", "chal", t0+minute+40*sec, x("re-redeem")),
		redeem(s.codes["pending"], "c1", "https://app/cb", "bad", t0+minute+40*sec, x("bad")),
		redeem(s.codes["pending"], "c1", "https://app/cb", "chal", t0+minute+40*sec, x("pending-tokens")),
		&IssueGrant{ClientID: "c1", Tenant: "t", Username: "alice", IssuedAt: t0 + 2*minute,
			Access: spec(x("new").access, t0+2*minute+accessL)},
		&rotLate,
		&PutClient{Client: Client{ID: "c1", Name: "renamed"}, KeepSecret: true},
		&PutClient{Client: Client{ID: "c2"}, Create: true},
		&PutUser{User: User{Tenant: "t", Username: "bob", PasswordHash: "p"}},
		&RevokeSubject{Tenant: "t", Username: "alice"},
		&Purge{Now: t0 + accessL},
		&DeleteClient{ClientID: "c2"},
		&Noop{},
	}
	for _, c := range cmds {
		s.e.idx++
		ra := a.Apply(s.e.idx, Encode(c))
		rb := b.Apply(s.e.idx, Encode(c))
		if ra != rb {
			t.Fatalf("%T: %+v vs %+v", c, ra, rb)
		}
	}
	sameState(t, a, b)
	sameLookups(t, s.hashes, nows, a, b)
}

func TestSnapshotRestoreWorkload(t *testing.T) {
	w := newWorkload(42)
	a := New()
	idx := uint64(0)
	for _, d := range w.entries(3000) {
		idx++
		a.Apply(idx, d)
	}
	b := roundTrip(t, a)
	// Restoring into a non-empty FSM replaces its state completely.
	c := newRichState(t).e.f
	if err := c.Restore(bytes.NewReader(snapshotBytes(t, a))); err != nil {
		t.Fatal(err)
	}
	sameState(t, a, c)
	for _, d := range w.entries(3000) {
		idx++
		ra, rb, rc := a.Apply(idx, d), b.Apply(idx, d), c.Apply(idx, d)
		if ra != rb || ra != rc {
			t.Fatalf("entry %d: %+v / %+v / %+v", idx, ra, rb, rc)
		}
	}
	sameState(t, a, b)
	sameState(t, a, c)
	sameLookups(t, w.hashes, []int64{w.now - hour, w.now}, a, b, c)
}

func TestSnapshotIsPointInTime(t *testing.T) {
	s := newRichState(t)
	before := digest(s.e.f)
	snap := s.e.f.Snapshot()
	s.e.ok(&RevokeClient{ClientID: "c1"})
	s.e.ok(&DeleteUser{Tenant: "t", Username: "alice"})
	s.e.ok(&Purge{Now: t0 + 100*hour})
	var buf bytes.Buffer
	snap.WriteTo(&buf)
	g := New()
	if err := g.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if digest(g) != before {
		t.Fatalf("snapshot saw later changes:\n%s", diffLines(before, digest(g)))
	}
}

func TestSnapshotEmpty(t *testing.T) {
	roundTrip(t, New())
}

func TestRestoreRejectsCorrupt(t *testing.T) {
	src := newRichState(t).e.f
	img := snapshotBytes(t, src)

	// The target has its own state, which a failed restore must keep.
	w := newWorkload(7)
	target := New()
	for i, d := range w.entries(40) {
		target.Apply(uint64(i+1), d)
	}
	want, wantIdx := digest(target), target.AppliedIndex()
	mustFail := func(name string, b []byte) {
		t.Helper()
		err := target.Restore(bytes.NewReader(b))
		if err == nil {
			t.Fatalf("%s: restore accepted", name)
		}
		if target.AppliedIndex() != wantIdx || digest(target) != want {
			t.Fatalf("%s: failed restore changed the state", name)
		}
	}
	for n := 0; n < len(img); n++ {
		mustFail("truncated", img[:n])
	}
	bad := append([]byte(nil), img...)
	bad[0] = 'X'
	mustFail("magic", bad)
	bad = append([]byte(nil), img...)
	bad[4] = snapshotVersion + 1
	mustFail("version", bad)

	hdr := func() *encoder {
		e := &encoder{}
		e.b = append(e.b, snapshotMagic[:]...)
		e.byte(snapshotVersion)
		e.uvarint(9)
		return e
	}
	// A token whose grant is not in the image.
	e := hdr()
	e.uvarint(0) // clients
	e.uvarint(0) // users
	e.uvarint(0) // counters
	e.uvarint(0) // consents
	e.uvarint(0) // sessions
	e.uvarint(0) // signing keys' generation
	e.uvarint(0) // signing keys
	e.uvarint(0) // grants
	e.b = binary.BigEndian.AppendUint64(e.b, 1)
	e.hash(HashOf("x"))
	e.uvarint(5)
	e.byte(byte(KindAccess))
	e.byte(0)
	e.byte(0)
	e.varint(1)
	e.varint(2)
	mustFail("dangling token", e.b)
	// Huge string length and huge counts.
	e = hdr()
	e.uvarint(1)
	e.uvarint(1 << 62)
	mustFail("huge string", e.b)
	e = hdr()
	e.uvarint(1 << 62)
	mustFail("huge client count", e.b)
	e = hdr()
	for range 8 { // clients to grants
		e.uvarint(0)
	}
	e.b = binary.BigEndian.AppendUint64(e.b, 1<<63)
	mustFail("huge token count", e.b)
	// A reader that fails midway.
	if err := target.Restore(iotest.TimeoutReader(bytes.NewReader(img))); err == nil {
		// TimeoutReader fails the second read; the 1 MiB buffer may read
		// a small image in one go, so only insist on untouched state.
		if len(img) > 1<<20 {
			t.Fatal("failing reader accepted")
		}
	} else if digest(target) != want {
		t.Fatal("failing reader changed state")
	}
	readErr := errors.New("disk on fire")
	if err := New().Restore(iotest.ErrReader(readErr)); !errors.Is(err, readErr) {
		t.Errorf("reader error not wrapped: %v", err)
	}

	// Random corruption: never a panic; a failure leaves the state alone,
	// and a success yields a consistent state.
	rng := rand.New(rand.NewSource(1))
	g := New()
	for i := 0; i < 500; i++ {
		m := append([]byte(nil), img...)
		for j := 0; j < 1+rng.Intn(4); j++ {
			m[rng.Intn(len(m))] = byte(rng.Intn(256))
		}
		before := digest(g)
		if err := g.Restore(bytes.NewReader(m)); err != nil {
			if digest(g) != before {
				t.Fatalf("corrupt image %d: failed restore changed state", i)
			}
			continue
		}
		checkRestoredConsistent(t, g)
	}
}

// checkRestoredConsistent is checkInvariants minus what a corrupt but
// well-formed image may legitimately break (say, duplicate grant ids).
func checkRestoredConsistent(t *testing.T, f *FSM) {
	t.Helper()
	for i := range f.tokens.shards {
		for h, r := range f.tokens.shards[i].records() {
			if h[0] != byte(i) || r.grant == nil {
				t.Fatalf("restored token %x… misplaced or without grant", h[:4])
			}
			f.lookupKey(h, t0)
		}
	}
	f.Snapshot()
}

// TestConcurrentReads runs readers against Apply, Snapshot and Restore;
// it is meant for -race.
func TestConcurrentReads(t *testing.T) {
	w := newWorkload(99)
	entries := w.entries(4000)
	// Readers look up a fixed set of hashes: every one the workload issues.
	hashes := append([]Hash(nil), w.hashes...)
	f := New()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var lookups, hits atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			var n, h int64
			for !stop.Load() {
				for i := 0; i < 64; i++ {
					tok, ok := f.Lookup(hashes[rng.Intn(len(hashes))], w.now-hour)
					n++
					if ok {
						h++
						if tok.Kind < KindAccess || tok.Kind > KindCode || tok.ClientID == "" {
							t.Errorf("torn token %+v", tok)
						}
					}
				}
				f.Client(wlClients[rng.Intn(3)])
				f.User("t", "alice")
				f.IssueCount("t/alice")
				f.AppliedIndex()
				if rng.Intn(50) == 0 {
					f.Clients()
					f.Users()
					f.LiveTokens()
				}
			}
			lookups.Add(n)
			hits.Add(h)
		}(g)
	}
	var snaps [][]byte
	for i, d := range entries {
		f.Apply(uint64(i+1), d)
		if i%500 == 499 {
			snaps = append(snaps, snapshotBytes(t, f))
		}
	}
	// Restore an older image while readers run, then catch up again.
	if err := f.Restore(bytes.NewReader(snaps[len(snaps)/2])); err != nil {
		t.Fatal(err)
	}
	for i := int(f.AppliedIndex()); i < len(entries); i++ {
		f.Apply(uint64(i+1), entries[i])
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d lookups, %d hits, %d snapshots", lookups.Load(), hits.Load(), len(snaps))

	// Replaying from the restored image reached the same state as a
	// straight replay.
	ref := New()
	for i, d := range entries {
		ref.Apply(uint64(i+1), d)
	}
	sameState(t, ref, f)
}

// TestSnapshotDecoderStrict: an image is input too, read by the command
// decoder with all its checks: a non-canonical varint, a string that is
// not UTF-8 and a boolean other than 0 or 1 are refused, as in a command.
func TestSnapshotDecoderStrict(t *testing.T) {
	f := New()
	f.Apply(1, Encode(&PutClient{Client: Client{ID: "c", Name: "n", Public: true, Scopes: []string{"s"}}, Create: true}))
	img := snapshotBytes(t, f)
	// The image: magic, version, applied index 1, one client: "c", "n",
	// 32-byte hash, public flag, ...
	const public = 4 + 1 + 1 + 1 + 2 + 2 + 32
	if img[public] != 1 || img[4+1] != 1 || img[4+1+1+1+1] != 'c' {
		t.Fatalf("unexpected layout: %x", img[:public+1])
	}
	edit := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), img...)) }
	for name, b := range map[string][]byte{
		"boolean 2":         edit(func(b []byte) []byte { b[public] = 2; return b }),
		"not UTF-8":         edit(func(b []byte) []byte { b[4+1+1+1+1] = 0xff; return b }),
		"overlong varint":   edit(func(b []byte) []byte { return append(append(b[:5:5], 0x81, 0x00), b[6:]...) }),
		"trailing data":     edit(func(b []byte) []byte { return append(b, 0) }),
		"truncated in hash": img[:public-1],
	} {
		g := New()
		if err := g.Restore(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
	g := New()
	if err := g.Restore(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	if c, ok := g.Client("c"); !ok || !c.Public {
		t.Fatalf("client %+v %v", c, ok)
	}
}

// FuzzSnapshot feeds Restore arbitrary images. It must never panic; a
// refused image leaves the state as it was, and an accepted one restores
// again, from its own snapshot, to the same state.
func FuzzSnapshot(f *testing.F) {
	f.Add(snapshotBytes(f, fuzzFixture()))
	w := newWorkload(3)
	fs := New()
	for i, d := range w.entries(30) {
		fs.Apply(uint64(i+1), d)
	}
	f.Add(snapshotBytes(f, fs))
	for _, v := range []int{1, 2, 3} {
		if img, err := os.ReadFile(fmt.Sprintf("testdata/snapshot-v%d.bin", v)); err == nil {
			f.Add(img)
		}
	}
	f.Add([]byte{})
	f.Add(append(snapshotMagic[:], snapshotVersion, 0, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		target := fuzzFixture()
		before, idx := digest(target), target.AppliedIndex()
		if err := target.Restore(bytes.NewReader(data)); err != nil {
			if digest(target) != before || target.AppliedIndex() != idx {
				t.Fatalf("refused image (%v) changed the state", err)
			}
			return
		}
		again := New()
		if err := again.Restore(bytes.NewReader(snapshotBytes(t, target))); err != nil {
			t.Fatalf("snapshot of a restored image does not restore: %v", err)
		}
		sameState(t, target, again)
	})
}
