package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Snapshot format (version 1), all integers as in codec.go:
//
//	magic "TKDS", version byte, applied index
//	clients:  count, then each client
//	users:    count, then each user
//	counters: count, then subject, count, last
//	grants:   count, then id, client, tenant, username, scope, redirect URI,
//	          code challenge, issuedAt, curRefresh, curAccess, prevRefresh,
//	          rotatedAt
//	tokens:   count, then hash, grant id, kind, state, own-scope flag
//	          (+ scope), issuedAt, expiresAt
//
// Snapshot encodes the state into one buffer while the apply goroutine is
// paused (raft never runs Snapshot concurrently with Apply), so the image is
// point-in-time; readers keep going because the shards are only read-locked.
// Persist then streams the buffer to the sink while Apply resumes. At about
// 60 bytes per token the buffer is far smaller than the live index, and
// encoding a million tokens takes a fraction of a second (BENCHMARKS.md).

var snapshotMagic = [4]byte{'T', 'K', 'D', 'S'}

const snapshotVersion = 1

// Snapshot is a point-in-time image of the state.
type Snapshot struct {
	data []byte
}

// WriteTo streams the image to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(s.data)
	return int64(n), err
}

// Size is the encoded size in bytes.
func (s *Snapshot) Size() int { return len(s.data) }

// Snapshot captures the current state. It must not run concurrently with
// Apply.
func (f *FSM) Snapshot() *Snapshot {
	e := encoder{b: make([]byte, 0, 64*1024+f.tokens.len()*64)}
	e.b = append(e.b, snapshotMagic[:]...)
	e.byte(snapshotVersion)
	e.uvarint(f.AppliedIndex())

	f.mu.RLock()
	e.uvarint(uint64(len(f.clients)))
	for _, c := range f.clients {
		encodeClient(&e, c)
	}
	e.uvarint(uint64(len(f.users)))
	for _, u := range f.users {
		encodeUser(&e, u)
	}
	e.uvarint(uint64(len(f.counters)))
	for k, c := range f.counters {
		e.string(k)
		e.uvarint(c.count)
		e.varint(c.last)
	}
	f.mu.RUnlock()

	e.uvarint(uint64(len(f.grants)))
	for _, g := range f.grants {
		e.uvarint(g.id)
		e.string(g.clientID)
		e.string(g.tenant)
		e.string(g.username)
		e.string(g.scope)
		e.string(g.redirectURI)
		e.string(g.codeChallenge)
		e.varint(g.issuedAt)
		e.hash(g.curRefresh)
		e.hash(g.curAccess)
		e.hash(g.prevRefresh)
		e.varint(g.rotatedAt)
	}

	// The token count is not known until the shards are walked; reserve a
	// fixed-width slot for it.
	countAt := len(e.b)
	e.b = append(e.b, make([]byte, 8)...)
	var n uint64
	for i := range f.tokens.shards {
		s := &f.tokens.shards[i]
		s.mu.RLock()
		for h, r := range s.m {
			e.hash(h)
			e.uvarint(r.grant.id)
			e.byte(byte(r.kind))
			e.byte(byte(r.state))
			if r.scope == r.grant.scope {
				e.byte(0)
			} else {
				e.byte(1)
				e.string(r.scope)
			}
			e.varint(r.issuedAt)
			e.varint(r.expiresAt)
			n++
		}
		s.mu.RUnlock()
	}
	binary.BigEndian.PutUint64(e.b[countAt:], n)
	return &Snapshot{data: e.b}
}

// Restore replaces the whole state with the image read from r.
func (f *FSM) Restore(r io.Reader) error {
	// Decode into a fresh FSM and swap tables only on success, so a bad
	// image leaves the current state untouched.
	fresh := New()
	applied, err := fresh.readSnapshot(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return fmt.Errorf("fsm: restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.clients, f.users, f.counters = fresh.clients, fresh.users, fresh.counters
	f.mu.Unlock()
	f.grants, f.byClient, f.bySubject, f.interned = fresh.grants, fresh.byClient, fresh.bySubject, fresh.interned
	for i := range f.tokens.shards {
		s := &f.tokens.shards[i]
		s.mu.Lock()
		s.m = fresh.tokens.shards[i].m
		s.mu.Unlock()
	}
	f.applied.Store(applied)
	return nil
}

// streamDecoder reads the codec's primitives from a buffered stream.
type streamDecoder struct {
	r   *bufio.Reader
	err error
	buf []byte
}

func (d *streamDecoder) fail(err error) {
	if d.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
	}
}

func (d *streamDecoder) byte() byte {
	if d.err != nil {
		return 0
	}
	b, err := d.r.ReadByte()
	if err != nil {
		d.fail(err)
	}
	return b
}

func (d *streamDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.fail(err)
	}
	return v
}

func (d *streamDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		d.fail(err)
	}
	return v
}

func (d *streamDecoder) full(n int) []byte {
	if d.err != nil {
		return nil
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail(err)
		return nil
	}
	return b
}

func (d *streamDecoder) hash() (h Hash) {
	copy(h[:], d.full(len(h)))
	return h
}

func (d *streamDecoder) string() string {
	n := d.uvarint()
	if n > maxString {
		d.fail(errShort)
		return ""
	}
	return string(d.full(int(n)))
}

// readSnapshot fills the empty f from an image and returns its applied index.
func (f *FSM) readSnapshot(r *bufio.Reader) (uint64, error) {
	d := &streamDecoder{r: r}
	var magic [4]byte
	copy(magic[:], d.full(4))
	if d.err == nil && magic != snapshotMagic {
		return 0, errors.New("not a tokend snapshot")
	}
	if v := d.byte(); d.err == nil && v != snapshotVersion {
		return 0, fmt.Errorf("unknown snapshot version %d", v)
	}
	applied := d.uvarint()

	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		c := d.client()
		f.clients[c.ID] = &c
	}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		u := User{Tenant: d.string(), Username: d.string(), PasswordHash: d.string(), CreatedAt: d.varint()}
		f.users[userKey{u.Tenant, u.Username}] = &u
	}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		k := d.string()
		f.counters[k] = counter{count: d.uvarint(), last: d.varint()}
	}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		g := &grant{id: d.uvarint()}
		g.clientID, g.tenant, g.username = f.intern(d.string()), f.intern(d.string()), f.intern(d.string())
		g.scope = f.intern(d.string())
		g.redirectURI, g.codeChallenge = d.string(), d.string()
		g.issuedAt = d.varint()
		g.curRefresh, g.curAccess, g.prevRefresh = d.hash(), d.hash(), d.hash()
		g.rotatedAt = d.varint()
		f.grants[g.id] = g
		addTo(f.byClient, g.clientID, g)
		if g.username != "" {
			addTo(f.bySubject, userKey{g.tenant, g.username}, g)
		}
	}
	var count [8]byte
	copy(count[:], d.full(8))
	for n := binary.BigEndian.Uint64(count[:]); n > 0 && d.err == nil; n-- {
		h := d.hash()
		g := f.grants[d.uvarint()]
		rec := record{grant: g, kind: Kind(d.byte()), state: recState(d.byte())}
		if d.byte() == 1 {
			rec.scope = f.intern(d.string())
		} else if g != nil {
			rec.scope = g.scope
		}
		rec.issuedAt, rec.expiresAt = d.varint(), d.varint()
		if d.err == nil && g == nil {
			return 0, errors.New("token refers to an unknown grant")
		}
		f.tokens.shards[h[0]].m[h] = rec
		if g != nil {
			g.tokens = append(g.tokens, h)
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	return applied, nil
}

func (d *streamDecoder) client() Client {
	var c Client
	c.ID, c.Name = d.string(), d.string()
	c.SecretHash = d.hash()
	c.Public = d.byte() == 1
	c.RedirectURIs, c.GrantTypes, c.Scopes = d.strings(), d.strings(), d.strings()
	c.CreatedAt, c.UpdatedAt = d.varint(), d.varint()
	return c
}

func (d *streamDecoder) strings() []string {
	n := d.uvarint()
	if n > maxString {
		d.fail(errShort)
		return nil
	}
	var out []string
	for ; n > 0 && d.err == nil; n-- {
		out = append(out, d.string())
	}
	return out
}
