package fsm

import (
	"bytes"
	"math"
	mrand "math/rand/v2"
	"testing"
	"unsafe"
)

// TestTableMatchesMap drives a table and a map with the same random puts
// and deletes, across growth and shrinking, with records that need a side
// entry (narrowed scope, odd lifetimes) and ones that do not.
func TestTableMatchesMap(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(7, 8))
	tab := newTable(0)
	model := map[key]record{}
	var keys []key
	scope := "narrow"
	g := &grant{id: 1}
	randRecord := func() record {
		r := record{grant: g, kind: Kind(1 + rng.IntN(3)), state: recState(rng.IntN(4)), issuedAt: rng.Int64N(1 << 62)}
		switch rng.IntN(6) {
		case 0:
			r.expiresAt = keepRedeemed
		case 1:
			r.expiresAt = r.issuedAt - 1 // negative lifetime
		case 2:
			r.issuedAt, r.expiresAt = math.MinInt64, math.MaxInt64-1 // difference overflows
		case 3:
			r.scope = &scope
			r.expiresAt = r.issuedAt + 5
		case 4:
			r.expiresAt = r.issuedAt + keepRedeemedLife // just too long
		default:
			r.expiresAt = r.issuedAt + rng.Int64N(1<<40)
		}
		return r
	}
	for step := 0; step < 60000; step++ {
		switch op := rng.IntN(10); {
		case op < 6 || len(keys) == 0: // insert or replace
			var k key
			if len(keys) > 0 && op == 0 {
				k = keys[rng.IntN(len(keys))]
			} else {
				for i := range k {
					k[i] = byte(rng.Uint32())
				}
				if step%3 == 0 {
					k[1], k[2] = 0, 0 // crowd some homes together
				}
				keys = append(keys, k)
			}
			r := randRecord()
			tab.put(k, r)
			model[k] = r
		default: // delete, sometimes a key never inserted
			i := rng.IntN(len(keys))
			k := keys[i]
			_, want := model[k]
			if got := tab.del(k); got != want {
				t.Fatalf("step %d: del = %v, want %v", step, got, want)
			}
			delete(model, k)
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
		}
		if step < 40000 && step%7 == 0 && len(keys) > 0 {
			k := keys[rng.IntN(len(keys))]
			got, ok := tab.get(&k)
			if want, wok := model[k]; ok != wok || got != want {
				t.Fatalf("step %d: get %x = %+v %v, want %+v %v", step, k[:4], got, ok, want, wok)
			}
		}
		if step == 40000 { // then drain most of it, so the table shrinks
			for len(keys) > 50 {
				tab.del(keys[len(keys)-1])
				delete(model, keys[len(keys)-1])
				keys = keys[:len(keys)-1]
			}
		}
	}
	if tab.n != len(model) || len(tab.side) > len(model) {
		t.Fatalf("n = %d, side %d, model %d", tab.n, len(tab.side), len(model))
	}
	if len(tab.slots) > 4*len(model)+4*minSlots {
		t.Errorf("table of %d slots for %d records did not shrink", len(tab.slots), len(model))
	}
	seen := 0
	tab.each(func(k key, r record) bool {
		seen++
		if want, ok := model[k]; !ok || r != want {
			t.Errorf("each: %x = %+v, want %+v", k[:4], r, want)
		}
		return true
	})
	if seen != len(model) {
		t.Errorf("each saw %d of %d", seen, len(model))
	}
	for k, want := range model {
		if got, ok := tab.get(&k); !ok || got != want {
			t.Fatalf("get %x = %+v %v, want %+v", k[:4], got, ok, want)
		}
	}
}

// TestSnapshotWhileApplying writes an image while the apply goroutine goes
// on changing every shard (the changes go to overlays): the image is the
// state at Snapshot, reads see every change at once, and after Release the
// overlays fold back into the tables. A twin that applies the same log
// without snapshots must end in the same state.
func TestSnapshotWhileApplying(t *testing.T) {
	w := newWorkload(11)
	f, twin := New(), New()
	idx := uint64(0)
	apply := func(entries [][]byte) {
		for _, d := range entries {
			idx++
			if a, b := f.Apply(idx, d), twin.Apply(idx, d); a != b {
				t.Fatalf("entry %d: %+v, twin %+v", idx, a, b)
			}
		}
	}
	apply(w.entries(3000))
	before := digest(f)
	snap := f.Snapshot()
	var img bytes.Buffer
	done := make(chan error)
	go func() {
		_, err := snap.WriteTo(&img)
		done <- err
	}()
	// Readers run throughout, over overlays and tables alike (for the
	// race detector: lookups only ever take a shard's read lock).
	entries := w.entries(3000)
	hashes := append([]Hash(nil), w.hashes...)
	stop, readersDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readersDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f.Lookup(hashes[i%len(hashes)], w.now)
			if i%500 == 0 {
				f.LiveTokens()
			}
		}
	}()
	apply(entries)
	close(stop)
	<-readersDone
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	overlays := 0
	for i := range f.tokens.shards {
		if f.tokens.shards[i].ov != nil {
			overlays++
		}
	}
	if overlays == 0 {
		t.Error("no shard holds an overlay while the snapshot is held")
	}
	sameState(t, f, twin)
	sameLookups(t, w.hashes, []int64{w.now - hour, w.now}, f, twin)
	g := New()
	if err := g.Restore(bytes.NewReader(img.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := digest(g); got != before {
		t.Fatalf("image saw later changes:\n%s", diffLines(before, got))
	}
	// Written again, the image is the same state (counters come in map
	// order, so not the same bytes).
	var again bytes.Buffer
	if _, err := snap.WriteTo(&again); err != nil {
		t.Fatal(err)
	}
	h := New()
	if err := h.Restore(&again); err != nil || digest(h) != before {
		t.Fatalf("second WriteTo differs (err %v)", err)
	}
	snap.Release()
	snap.Release()
	if _, err := snap.WriteTo(&again); err == nil {
		t.Error("WriteTo after Release succeeded")
	}
	apply(w.entries(3000))
	for i := range f.tokens.shards {
		if n := f.tokens.shards[i].t.shared.Load(); n != 0 {
			t.Fatalf("shard %d still shared by %d after Release", i, n)
		}
	}
	sameState(t, f, twin)
}

// TestSnapshotNeverReleased: overlays stay bounded when a snapshot is
// never released (the shard copies its table instead), and overlapping
// snapshots each see their own point in time.
func TestSnapshotNeverReleased(t *testing.T) {
	w := newWorkload(12)
	f, twin := New(), New()
	idx := uint64(0)
	apply := func(entries [][]byte) {
		for _, d := range entries {
			idx++
			f.Apply(idx, d)
			twin.Apply(idx, d)
		}
	}
	apply(w.entries(2000))
	d1 := digest(f)
	s1 := f.Snapshot()
	apply(w.entries(2000))
	d2 := digest(f)
	s2 := f.Snapshot() // folds s1's overlays into copies
	apply(w.entries(6000))
	for i := range f.tokens.shards {
		s := &f.tokens.shards[i]
		if limit := max(overlayCopyMin, len(s.t.slots)/overlayCopyDiv); len(s.ov) > limit {
			t.Errorf("shard %d: overlay of %d, limit %d", i, len(s.ov), limit)
		}
	}
	sameState(t, f, twin)
	for _, c := range []struct {
		s    *Snapshot
		want string
	}{{s1, d1}, {s2, d2}} {
		var buf bytes.Buffer
		if _, err := c.s.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		g := New()
		if err := g.Restore(&buf); err != nil {
			t.Fatal(err)
		}
		if got := digest(g); got != c.want {
			t.Fatalf("image saw later changes:\n%s", diffLines(c.want, got))
		}
	}
}

// TestLayoutSizes guards the sizes the memory budget rests on (doc.go,
// "Memory layout"): a slot is 40 bytes and a grant fits the 144-byte size
// class.
func TestLayoutSizes(t *testing.T) {
	if n := unsafe.Sizeof(slot{}); n != 40 {
		t.Errorf("slot is %d bytes, want 40", n)
	}
	if n := unsafe.Sizeof(grant{}); n > 144 {
		t.Errorf("grant is %d bytes, want at most 144", n)
	}
}

// TestRestoreRejectsUnknownKind: a slot keeps two bits of kind, so an
// image naming a kind tokend never writes is refused rather than folded
// into a real one.
func TestRestoreRejectsUnknownKind(t *testing.T) {
	image := func(kind byte) []byte {
		e := &encoder{}
		e.b = append(e.b, snapshotMagic[:]...)
		e.byte(snapshotVersion)
		e.uvarint(9)
		e.uvarint(0) // clients
		e.uvarint(0) // users
		e.uvarint(0) // counters
		e.uvarint(0) // consents
		e.uvarint(0) // sessions
		e.uvarint(0) // signing keys' generation
		e.uvarint(0) // signing keys
		e.uvarint(1) // grants
		e.uvarint(5)
		e.string("c")
		e.string("t")
		e.string("u")
		e.string("read")
		e.varint(1)
		e.bool(false) // code
		e.bool(false) // rotation
		e.uvarint(1)  // tokens
		e.key(keyOf(HashOf("x")))
		e.uvarint(5)
		e.byte(kind)
		e.byte(byte(stateActive))
		e.bool(false) // own scope
		e.varint(1)
		e.varint(2)
		return e.b
	}
	if err := New().Restore(bytes.NewReader(image(byte(KindAccess)))); err != nil {
		t.Fatalf("well-formed image refused: %v", err)
	}
	for _, k := range []byte{0, 4, 5, 255} {
		if err := New().Restore(bytes.NewReader(image(k))); err == nil {
			t.Errorf("kind %d accepted", k)
		}
	}
}

// TestTableAddNew: addNew, restore's one-probe insert, adds what is new
// and refuses what is there, in any order and across growth.
func TestTableAddNew(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	tab := newTable(0)
	g := &grant{id: 1}
	var keys []key
	for i := 0; i < 20000; i++ {
		var k key
		if i%5 == 4 {
			k = keys[rng.IntN(len(keys))]
		} else {
			for j := range k {
				k[j] = byte(rng.Uint32())
			}
			if i%3 == 0 {
				k[8] = 0 // crowd some homes together
			}
		}
		s, _ := encode(k, record{grant: g, kind: KindAccess, issuedAt: int64(i), expiresAt: int64(i) + 9})
		if got, want := tab.addNew(s, 1000), i%5 != 4; got != want {
			t.Fatalf("%d: addNew = %v, want %v", i, got, want)
		}
		if i%5 != 4 {
			keys = append(keys, k)
		}
	}
	if tab.n != len(keys) {
		t.Fatalf("n = %d, want %d", tab.n, len(keys))
	}
	for i, k := range keys {
		if r, ok := tab.get(&k); !ok || r.expiresAt-r.issuedAt != 9 {
			t.Fatalf("key %d: %+v %v", i, r, ok)
		}
	}
}
