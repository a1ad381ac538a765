package fsm

import (
	"iter"
	"sync"
)

// shard is one 256th of the token index: a table, and while a snapshot
// still reads that table, an overlay of the changes made since. Readers
// take the read lock; the apply goroutine, the only writer, takes the
// write lock. See doc.go ("Memory layout") for why changes go to an
// overlay rather than to a copy of the table.
type shard struct {
	mu sync.RWMutex
	t  *table
	// ov holds, per key, the record put or the deletion made while t was
	// shared; nil when empty. It is folded into t by the first change
	// after t is no longer shared.
	ov map[key]ovRec
	n  int // records in the shard: t's, plus ov's changes
}

type ovRec struct {
	r       record
	deleted bool
}

// maxOverlay bounds an overlay against a snapshot that is never
// released: past len(t.slots)/overlayCopyDiv changes (and at least
// overlayCopyMin), the shard copies its table instead, as plain
// copy-on-write would have from the start.
const (
	overlayCopyDiv = 4
	overlayCopyMin = 64
)

type index struct {
	shards [shardCount]shard
	// rec, when set, records every key put or deleted before the change
	// is made (recent.go).
	rec *recent
}

func newIndex() *index {
	ix := &index{}
	for i := range ix.shards {
		ix.shards[i].t = newTable(minSlots)
	}
	return ix
}

func (ix *index) shard(k key) *shard { return &ix.shards[k[0]] }

func (ix *index) get(k key) (record, bool) {
	s := ix.shard(k)
	s.mu.RLock()
	r, ok := s.get(&k)
	s.mu.RUnlock()
	return r, ok
}

// get looks k up; the caller holds s.mu.
func (s *shard) get(k *key) (record, bool) {
	if s.ov != nil {
		if o, ok := s.ov[*k]; ok {
			return o.r, !o.deleted
		}
	}
	return s.t.get(k)
}

// writable returns the table to change in place, or nil if changes must
// go to the overlay. The caller holds s.mu for writing.
func (s *shard) writable() *table {
	if s.t.shared.Load() > 0 {
		if len(s.ov) < max(overlayCopyMin, len(s.t.slots)/overlayCopyDiv) {
			return nil
		}
		s.t = s.t.clone()
	}
	if s.ov != nil {
		for k, o := range s.ov {
			if o.deleted {
				s.t.del(k)
			} else {
				s.t.put(k, o.r)
			}
		}
		s.ov = nil
	}
	return s.t
}

func (ix *index) put(k key, r record) {
	ix.rec.touch(k)
	s := ix.shard(k)
	s.mu.Lock()
	s.put(k, r)
	s.mu.Unlock()
}

func (s *shard) put(k key, r record) {
	if _, ok := s.get(&k); !ok {
		s.n++
	}
	if t := s.writable(); t != nil {
		t.put(k, r)
		return
	}
	if s.ov == nil {
		s.ov = make(map[key]ovRec)
	}
	s.ov[k] = ovRec{r: r}
}

// putNew adds k's record unless k is there already, and reports whether
// it did: one probe where get then put take two. For a restore into a
// private index (no snapshot shares it); hint is the records expected in
// the shard.
func (s *shard) putNew(k key, r record, hint int) bool {
	t := s.writable()
	if t == nil {
		return false
	}
	sl, side := encode(k, r)
	if !t.addNew(sl, hint) {
		return false
	}
	if side {
		if t.side == nil {
			t.side = make(map[key]sideRec)
		}
		t.side[k] = sideRec{scope: r.scope, expiresAt: r.expiresAt}
	}
	s.n++
	return true
}

// del removes k and reports whether it was there.
func (ix *index) del(k key) bool {
	ix.rec.touch(k)
	s := ix.shard(k)
	s.mu.Lock()
	ok := s.del(k)
	s.mu.Unlock()
	return ok
}

func (s *shard) del(k key) bool {
	if _, ok := s.get(&k); !ok {
		return false
	}
	s.n--
	if t := s.writable(); t != nil {
		t.del(k)
		return true
	}
	if s.t.find(&k) >= 0 {
		if s.ov == nil {
			s.ov = make(map[key]ovRec)
		}
		s.ov[k] = ovRec{deleted: true}
	} else {
		// Put since the snapshot: forgetting it is enough, so a token
		// issued and revoked during a snapshot leaves nothing behind.
		delete(s.ov, k)
	}
	return true
}

func (ix *index) len() int {
	n := 0
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.RLock()
		n += s.n
		s.mu.RUnlock()
	}
	return n
}

// each calls fn for every record, one shard at a time under its read lock,
// until fn returns false. fn must not change the index.
func (ix *index) each(fn func(key, record) bool) {
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.RLock()
		more := s.each(fn)
		s.mu.RUnlock()
		if !more {
			return
		}
	}
}

// each calls fn for the shard's records; the caller holds s.mu.
func (s *shard) each(fn func(key, record) bool) bool {
	more := s.t.each(func(k key, r record) bool {
		if _, changed := s.ov[k]; changed {
			return true
		}
		return fn(k, r)
	})
	for k, o := range s.ov {
		if !more {
			break
		}
		if !o.deleted {
			more = fn(k, o.r)
		}
	}
	return more
}

// records iterates over the shard's records; the caller holds s.mu or
// owns the index.
func (s *shard) records() iter.Seq2[key, record] {
	return func(yield func(key, record) bool) { s.each(yield) }
}

// deleteIf removes every record for which drop returns true and calls
// gone for each, one shard at a time under its write lock.
func (ix *index) deleteIf(drop func(record) bool, gone func(record)) {
	var doomed []key
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		doomed = doomed[:0]
		s.each(func(k key, r record) bool {
			if drop(r) {
				doomed = append(doomed, k)
				gone(r)
			}
			return true
		})
		for _, k := range doomed {
			s.del(k)
		}
		s.mu.Unlock()
	}
}

// share returns the shard's table for a snapshot to read, first folding
// in any overlay (a copy, when the table is still shared with an earlier
// snapshot) so the table is the shard's whole state. Apply goroutine
// only.
func (s *shard) share() *table {
	if s.ov != nil {
		s.mu.Lock()
		if s.t.shared.Load() > 0 {
			s.t = s.t.clone()
		}
		s.writable()
		s.mu.Unlock()
	}
	s.t.shared.Add(1)
	return s.t
}
