package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Snapshot format (version 4), all integers as in codec.go:
//
//	magic "TKDS", version byte, applied index
//	clients:  count, then each client with its flags and OpenID fields
//	          (encodeClient)
//	users:    count, then each user with its claims (encodeUser)
//	counters: count, then subject, count, last
//	consents: count, then tenant, username, client id, scope
//	sessions: count, then SID, tenant, username, authTime, expiresAt
//	keys:     generation, count, then each signing key (keys.go)
//	grants:   count, then id, client, tenant, username, scope, issuedAt,
//	          code flag (+ redirect URI, challenge,
//	          sign-in flag (+ nonce, authTime)),
//	          rotation flag (+ cur, curAccess, prev keys, rotatedAt)
//
// Keys are the index's 16-byte token keys (index.go), not full hashes.
//	tokens:   count, then key, grant id, kind, state, own-scope flag
//	          (+ scope), issuedAt, expiresAt
//
// Version 2 has the layout of version 1 and adds a record state, orphaned
// (a refresh token a grace retry superseded): a version 1 reader would take
// such a token for a live one, so it must refuse the image. Version 3 adds
// the clients' flags (Introspect). Version 4 adds OpenID Connect: the
// clients' access token format and post-logout redirect URIs, the users'
// claims, the consents, sessions and signing keys sections, and a grant's
// sign-in. Restore reads all four; what an older image lacks is empty. A
// grant's spent lists (index.go) are not written: Restore rebuilds them
// from the records.
//
// Snapshot runs on the apply goroutine (raft never runs it concurrently
// with Apply) and copies nothing big: it takes a reference on each shard's
// table (while one is held, Apply leaves the table alone and records its
// changes in the shard's overlay, see shard.go), copies the small client,
// user and counter tables, and each grant's current rotation pointer.
// Everything a record points at is immutable or replaced rather than
// modified, so the shared tables are a point-in-time image that WriteTo can
// encode and stream while Apply carries on; Release drops the references.
// Readers are never blocked.
//
// WriteTo writes each grant once without a set of the grants it has seen:
// it marks them (grant.snapMark) in two passes over the tables, one to
// count them and one to write them, with a generation number that is new
// for each WriteTo. Writers of one FSM take turns (snapWriters.mu) so their
// marks do not mix.

var snapshotMagic = [4]byte{'T', 'K', 'D', 'S'}

// snapshotVersion is what WriteTo writes; Restore reads every version from
// minSnapshotVersion on.
const (
	snapshotVersion    = 4
	minSnapshotVersion = 1
	// snapshotVersionFlags is the first version whose clients have flags.
	snapshotVersionFlags = 3
	// snapshotVersionOIDC is the first with OpenID Connect state.
	snapshotVersionOIDC = 4
)

// Snapshot is a point-in-time image of the state.
type Snapshot struct {
	applied  uint64
	clients  []*Client
	users    []*User
	counters map[string]counter
	consents map[userKey]map[string]string
	sessions map[Hash]Session
	keys     []SigningKey
	keyGen   uint64
	tables   [shardCount]*table
	rots     map[*grant]*rotation
	writers  *snapWriters
	released atomic.Bool
}

// snapWriters serialises the WriteTo calls of one FSM's snapshots.
type snapWriters struct {
	mu  sync.Mutex
	gen uint32 // the last generation used; 2*gen-1 and 2*gen mark grants
}

// Snapshot captures the current state. It must not run concurrently with
// Apply; the returned image may be written while Apply continues, as
// often as wanted until Release.
func (f *FSM) Snapshot() *Snapshot {
	s := &Snapshot{applied: f.AppliedIndex(), rots: make(map[*grant]*rotation), writers: f.writers}
	f.mu.RLock()
	for _, c := range f.clients {
		s.clients = append(s.clients, c)
	}
	for _, u := range f.users {
		s.users = append(s.users, u)
	}
	s.counters = maps.Clone(f.counters)
	s.consents = make(map[userKey]map[string]string, len(f.consents))
	for k, m := range f.consents {
		s.consents[k] = maps.Clone(m) // Apply changes the inner maps in place
	}
	s.sessions = maps.Clone(f.sessions)
	s.keys, s.keyGen = f.keys, f.keyGen // replaced, never modified
	f.mu.RUnlock()
	for i := range f.tokens.shards {
		s.tables[i] = f.tokens.shards[i].share()
	}
	f.eachGrant(func(g *grant) {
		if r := g.rot(); r != nil {
			s.rots[g] = r
		}
	})
	return s
}

// Release lets Apply change the tables in place again. The image must not
// be written after Release; a second Release does nothing.
func (s *Snapshot) Release() {
	if s.released.Swap(true) {
		return
	}
	for _, t := range s.tables {
		t.shared.Add(-1)
	}
}

// WriteTo encodes and streams the image to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	if s.released.Load() {
		return 0, errors.New("fsm: snapshot written after Release")
	}
	s.writers.mu.Lock()
	defer s.writers.mu.Unlock()
	cw := &countingWriter{w: w}
	sw := &snapshotWriter{bw: bufio.NewWriterSize(cw, 1<<20), e: encoder{b: make([]byte, 0, 64<<10)}}
	sw.e.b = append(sw.e.b, snapshotMagic[:]...)
	sw.e.byte(snapshotVersion)
	sw.e.uvarint(s.applied)
	if err := s.writeTables(sw); err != nil {
		return cw.n, err
	}
	if err := s.writeGrants(sw); err != nil {
		return cw.n, err
	}
	if err := s.writeTokens(sw); err != nil {
		return cw.n, err
	}
	if _, err := sw.bw.Write(sw.e.b); err != nil {
		return cw.n, err
	}
	err := sw.bw.Flush()
	return cw.n, err
}

// snapshotWriter encodes into e and hands full chunks to bw.
type snapshotWriter struct {
	bw *bufio.Writer
	e  encoder
}

// flush writes what was encoded once it nears the encoder's capacity.
func (sw *snapshotWriter) flush() error {
	if len(sw.e.b) < 60<<10 {
		return nil
	}
	_, err := sw.bw.Write(sw.e.b)
	sw.e.b = sw.e.b[:0]
	return err
}

// writeTables writes the clients, users and counters sections.
func (s *Snapshot) writeTables(sw *snapshotWriter) error {
	e := &sw.e
	e.uvarint(uint64(len(s.clients)))
	for _, c := range s.clients {
		encodeClient(e, c, true, true)
		if err := sw.flush(); err != nil {
			return err
		}
	}
	e.uvarint(uint64(len(s.users)))
	for _, u := range s.users {
		encodeUser(e, u, true)
		if err := sw.flush(); err != nil {
			return err
		}
	}
	e.uvarint(uint64(len(s.counters)))
	for k, c := range s.counters {
		e.string(k)
		e.uvarint(c.count)
		e.varint(c.last)
		if err := sw.flush(); err != nil {
			return err
		}
	}
	return s.writeOIDC(sw)
}

// writeGrants writes the grants section: exactly the grants the shared
// tables point at, each once (see the marks above).
func (s *Snapshot) writeGrants(sw *snapshotWriter) error {
	s.writers.gen++
	if s.writers.gen == 1<<31 { // 2*gen must not wrap: start over from clean marks
		s.writers.gen = 1
		for _, t := range s.tables {
			for i := range t.slots {
				if g := t.slots[i].g; g != nil {
					g.snapMark.Store(0)
				}
			}
		}
	}
	counted, written := 2*s.writers.gen-1, 2*s.writers.gen
	grants := 0
	for _, t := range s.tables {
		for i := range t.slots {
			if g := t.slots[i].g; g != nil && g.snapMark.Load() != counted {
				g.snapMark.Store(counted)
				grants++
			}
		}
	}
	e := &sw.e
	e.uvarint(uint64(grants))
	for _, t := range s.tables {
		for i := range t.slots {
			g := t.slots[i].g
			if g == nil || g.snapMark.Load() == written {
				continue
			}
			g.snapMark.Store(written)
			s.writeGrant(e, g)
			if err := sw.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Snapshot) writeGrant(e *encoder, g *grant) {
	e.uvarint(g.id)
	e.string(g.clientID())
	e.string(g.tenant)
	e.string(g.username)
	e.string(*g.scope)
	e.varint(g.issuedAt)
	e.bool(g.code != nil)
	if g.code != nil {
		e.string(g.code.redirectURI)
		e.string(g.code.challenge)
		e.bool(g.code.signIn != nil)
		if si := g.code.signIn; si != nil {
			e.string(si.nonce)
			e.varint(si.authTime)
		}
	}
	rot := s.rots[g]
	e.bool(rot != nil)
	if rot != nil {
		e.key(rot.cur)
		e.key(rot.curAccess)
		e.key(rot.prev)
		e.varint(rot.rotatedAt)
	}
}

// writeTokens writes the tokens section.
func (s *Snapshot) writeTokens(sw *snapshotWriter) error {
	tokens := 0
	for _, t := range s.tables {
		tokens += t.n
	}
	e := &sw.e
	e.uvarint(uint64(tokens))
	var err error
	for _, t := range s.tables {
		t.each(func(k key, r record) bool {
			e.key(k)
			e.uvarint(r.grant.id)
			e.byte(byte(r.kind))
			e.byte(byte(r.state))
			e.bool(r.scope != nil)
			if r.scope != nil {
				e.string(*r.scope)
			}
			e.varint(r.issuedAt)
			e.varint(r.expiresAt)
			err = sw.flush()
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the whole state with the image read from r.
func (f *FSM) Restore(r io.Reader) error {
	// Decode into a fresh FSM and swap tables only on success, so a bad
	// image leaves the current state untouched.
	fresh := New()
	applied, err := fresh.readSnapshot(r)
	if err != nil {
		return fmt.Errorf("fsm: restore snapshot: %w", err)
	}
	f.recent.coverAll(applied) // every key may change here (recent.go)
	f.mu.Lock()
	f.clients, f.users, f.counters = fresh.clients, fresh.users, fresh.counters
	f.consents, f.sessions, f.userSessions = fresh.consents, fresh.sessions, fresh.userSessions
	f.keys, f.keyGen = fresh.keys, fresh.keyGen
	f.mu.Unlock()
	f.byClient, f.bySubject, f.interned, f.ptrs = fresh.byClient, fresh.bySubject, fresh.interned, fresh.ptrs
	f.nGrants.Store(fresh.nGrants.Load())
	for i := range f.tokens.shards {
		s := &f.tokens.shards[i]
		s.mu.Lock()
		s.t, s.ov, s.n = fresh.tokens.shards[i].t, nil, fresh.tokens.shards[i].n
		s.mu.Unlock()
	}
	f.applied.Store(applied)
	return nil
}

// readSnapshot fills the empty f from an image and returns its applied
// index. It reads with the command decoder (codec.go), so an image gets
// every check a command does.
func (f *FSM) readSnapshot(r io.Reader) (uint64, error) {
	d := newStreamDecoder(r)
	var magic [4]byte
	copy(magic[:], d.take(len(magic)))
	if d.err == nil && magic != snapshotMagic {
		return 0, errors.New("not a tokend snapshot")
	}
	version := d.byte()
	if d.err == nil && (version < minSnapshotVersion || version > snapshotVersion) {
		return 0, fmt.Errorf("unknown snapshot version %d", version)
	}
	applied := d.uvarint()
	if err := f.readTables(d, version); err != nil {
		return 0, err
	}
	// Tokens name their grant by id; only here is a grant looked up so.
	byID, err := f.readGrants(d, version)
	if err != nil {
		return 0, err
	}
	if err := f.readTokens(d, byID); err != nil {
		return 0, err
	}
	// The writer finds grants through their tokens, so an image never holds
	// a grant without one; a crafted image that does would restore a grant
	// that the next snapshot silently drops, and replicas would differ.
	if d.err == nil {
		for id, g := range byID {
			if len(g.tokens) == 0 {
				return 0, fmt.Errorf("grant %d holds no token", id)
			}
		}
	}
	// The spent lists are not in the image: they follow from the records.
	for _, g := range byID {
		if sp := g.spent(); sp != nil {
			slices.SortFunc(sp.retired, spentKey.compare)
			slices.SortFunc(sp.orphans, spentKey.compare)
		}
	}
	end := d.atEnd()
	if d.err != nil {
		return 0, d.err
	}
	if !end {
		return 0, errors.New("trailing data after the image")
	}
	return applied, nil
}

// readTables reads the clients, users and counters sections, and from
// version 4 on the OpenID Connect sections.
func (f *FSM) readTables(d *decoder, version byte) error {
	oidc := version >= snapshotVersionOIDC
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		c := decodeClient(d, version >= snapshotVersionFlags, oidc)
		f.clients[c.ID] = &c
	}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		u := decodeUser(d, oidc)
		f.users[userKey{u.Tenant, u.Username}] = &u
	}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		k := d.string()
		f.counters[k] = counter{count: d.uvarint(), last: d.varint()}
	}
	if !oidc {
		return nil
	}
	return f.readOIDC(d)
}

// readGrants reads the grants section and indexes each grant.
func (f *FSM) readGrants(d *decoder, version byte) (map[uint64]*grant, error) {
	n := d.uvarint()
	// Sized up front (up to a bound an untrusted count cannot inflate
	// much): growing a map of millions rehashes it a dozen times.
	byID := make(map[uint64]*grant, min(n, 1<<16))
	for ; n > 0 && d.err == nil; n-- {
		g := &grant{id: d.uvarint()}
		g.client = f.internPtr(d.string())
		g.tenant, g.username = f.intern(d.string()), f.intern(d.string())
		g.scope = f.internPtr(d.string())
		g.issuedAt = d.varint()
		if d.bool() {
			g.code = &codeBinding{redirectURI: d.string(), challenge: d.string()}
			if version >= snapshotVersionOIDC && d.bool() {
				g.code.signIn = &signIn{nonce: d.string(), authTime: d.varint()}
				if d.err == nil && g.code.signIn.nonce == "" && g.code.signIn.authTime == 0 {
					return nil, fmt.Errorf("grant %d has an empty sign-in", g.id)
				}
			}
		}
		if d.bool() {
			g.setRot(&rotation{cur: d.key(), curAccess: d.key(), prev: d.key(), rotatedAt: d.varint()})
		}
		if d.err != nil {
			break
		}
		if byID[g.id] != nil {
			return nil, fmt.Errorf("grant %d appears twice", g.id)
		}
		byID[g.id] = g
		f.indexGrant(g)
	}
	return byID, nil
}

// readTokens reads the tokens section into the index and the grants'
// token and spent lists.
func (f *FSM) readTokens(d *decoder, byID map[uint64]*grant) error {
	total := d.uvarint()
	// Tables grow towards their share of the count in large steps
	// (table.add), rather than by half from empty.
	hint := int(min(total, 1<<40)/shardCount) + 8
	for n := total; n > 0 && d.err == nil; n-- {
		k := d.key()
		g := byID[d.uvarint()]
		rec := record{grant: g, kind: Kind(d.byte()), state: recState(d.byte())}
		if d.bool() {
			rec.scope = f.internPtr(d.string())
		}
		rec.issuedAt, rec.expiresAt = d.varint(), d.varint()
		if d.err != nil {
			break
		}
		if g == nil {
			return errors.New("token refers to an unknown grant")
		}
		if rec.state > stateOrphaned {
			return fmt.Errorf("unknown token state %d", rec.state)
		}
		if rec.kind < KindAccess || rec.kind > KindCode {
			return fmt.Errorf("unknown token kind %d", rec.kind)
		}
		// f is private: no lock, no snapshot.
		if !f.tokens.shards[k[0]].putNew(k, rec, hint) {
			return errors.New("token appears twice")
		}
		g.tokens = append(g.tokens, k)
		if rec.kind == KindRefresh && (rec.state == stateRotated || rec.state == stateOrphaned) {
			if g.chain == nil {
				g.chain = &chain{}
			}
			sp := &g.chain.spent
			sk := spentKey{k, rec.issuedAt, rec.expiresAt}
			if rec.state == stateRotated {
				sp.retired = append(sp.retired, sk)
			} else {
				sp.orphans = append(sp.orphans, sk)
			}
		}
	}
	return nil
}
