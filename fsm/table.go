package fsm

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
)

// table is one shard's token records: an open-addressing hash table with
// Robin Hood linear probing over one flat slice of 40-byte slots. See
// doc.go ("Memory layout") for why it looks like this.
type table struct {
	slots []slot
	n     int // occupied slots
	// side holds what does not fit a slot: a narrowed scope, or a
	// lifetime outside [0, 2^56) ns. Almost always empty.
	side map[key]sideRec
	// shared counts the snapshots that still read this table. While it is
	// above zero the table is immutable: a writer copies it first.
	shared atomic.Int32
}

// slot packs a record into 40 bytes: the key, the grant, issuedAt, and one
// word holding the lifetime (expiresAt - issuedAt) in its top 56 bits and
// the record's flags in its low 8.
type slot struct {
	k        key
	g        *grant
	issuedAt int64
	packed   uint64
}

type sideRec struct {
	scope     *string
	expiresAt int64
}

// Flag bits in the low byte of slot.packed.
const (
	flagUsed  = 1 << 0
	flagSide  = 1 << 1 // expiresAt (and maybe scope) live in table.side
	kindShift = 2      // 2 bits: Kind (1..3)
	stShift   = 4      // 2 bits: recState (0..3)
	flagMask  = 0xff
	// maxLoad is the fill, in 1/8, at which a table grows by half: it
	// then runs between 53 % and 80 % full.
	maxLoadNum, maxLoadDen = 4, 5
	minSlots               = 8
)

// keepRedeemedLife marks, in the lifetime bits, a record that never
// expires (keepRedeemed); a real lifetime that large goes to side.
const keepRedeemedLife = 1<<56 - 1

func newTable(n int) *table {
	if n < minSlots {
		n = minSlots
	}
	return &table{slots: make([]slot, n)}
}

// home is k's preferred slot. Bytes 1..8 of a key are uniformly random
// (byte 0 picked the shard); fastrange maps them onto len(slots) without a
// division or a power-of-two size.
func (t *table) home(k *key) int {
	hi, _ := bits.Mul64(binary.LittleEndian.Uint64(k[1:9]), uint64(len(t.slots)))
	return int(hi)
}

// dist is how far slot i is from the home of the key it holds.
func (t *table) dist(i int) int {
	d := i - t.home(&t.slots[i].k)
	if d < 0 {
		d += len(t.slots)
	}
	return d
}

// find returns k's slot index, or -1. It allocates nothing and stops at
// the first slot closer to its home than k would be (Robin Hood order), so
// a miss probes about as far as a hit.
func (t *table) find(k *key) int {
	n := len(t.slots)
	i := t.home(k)
	for d := 0; ; d++ {
		s := &t.slots[i]
		if s.packed&flagUsed == 0 {
			return -1
		}
		if s.k == *k {
			return i
		}
		if t.dist(i) < d {
			return -1
		}
		if i++; i == n {
			i = 0
		}
	}
}

func (t *table) get(k *key) (record, bool) {
	i := t.find(k)
	if i < 0 {
		return record{}, false
	}
	return t.decode(i), true
}

// decode turns slot i back into a record.
func (t *table) decode(i int) record {
	s := &t.slots[i]
	r := record{
		grant:    s.g,
		issuedAt: s.issuedAt,
		kind:     Kind(s.packed >> kindShift & 3),
		state:    recState(s.packed >> stShift & 3),
	}
	switch life := s.packed >> 8; {
	case s.packed&flagSide != 0:
		sr := t.side[s.k]
		r.scope, r.expiresAt = sr.scope, sr.expiresAt
	case life == keepRedeemedLife:
		r.expiresAt = keepRedeemed
	default:
		r.expiresAt = s.issuedAt + int64(life)
	}
	return r
}

// encode packs r into a slot, reporting whether it needs a side entry.
func encode(k key, r record) (slot, bool) {
	s := slot{k: k, g: r.grant, issuedAt: r.issuedAt,
		packed: flagUsed | uint64(r.kind&3)<<kindShift | uint64(r.state&3)<<stShift}
	life := uint64(r.expiresAt - r.issuedAt)
	switch {
	case r.scope != nil:
	case r.expiresAt == keepRedeemed:
		s.packed |= keepRedeemedLife << 8
		return s, false
	case r.expiresAt >= r.issuedAt && life < keepRedeemedLife && !subOverflows(r.expiresAt, r.issuedAt):
		s.packed |= life << 8
		return s, false
	}
	s.packed |= flagSide
	return s, true
}

// subOverflows reports whether a-b overflows int64.
func subOverflows(a, b int64) bool {
	d := a - b
	return (a >= 0) != (b >= 0) && (d >= 0) != (a >= 0)
}

// put inserts or replaces k's record. The caller has made t writable.
func (t *table) put(k key, r record) {
	s, side := encode(k, r)
	if side {
		if t.side == nil {
			t.side = make(map[key]sideRec)
		}
		t.side[k] = sideRec{scope: r.scope, expiresAt: r.expiresAt}
	} else if t.side != nil {
		delete(t.side, k)
	}
	if i := t.find(&k); i >= 0 {
		t.slots[i] = s
		return
	}
	t.add(s, 0)
}

// add inserts s, known absent.
func (t *table) add(s slot, hint int) {
	t.reserve(hint)
	t.insert(s)
	t.n++
}

// reserve makes room for one more record, growing the table if it is
// full: by half, or towards hint records (at most fourfold at a time, so a
// hint from an untrusted image cannot allocate ahead of the records).
func (t *table) reserve(hint int) {
	if (t.n+1)*maxLoadDen > len(t.slots)*maxLoadNum {
		size := len(t.slots) + len(t.slots)/2
		if want := hint * maxLoadDen / maxLoadNum; want > size {
			size = min(want+1, 4*len(t.slots))
		}
		t.resize(size)
	}
}

// addNew inserts s unless its key is there, in one probe: in Robin Hood
// order the key can only sit before the first entry nearer its home than
// it would be, which is where s goes.
func (t *table) addNew(s slot, hint int) bool {
	t.reserve(hint)
	n := len(t.slots)
	i := t.home(&s.k)
	for d := 0; ; d++ {
		cur := &t.slots[i]
		if cur.packed&flagUsed == 0 {
			*cur = s
			t.n++
			return true
		}
		if cur.k == s.k {
			return false
		}
		if cd := t.dist(i); cd < d {
			s, *cur = *cur, s
			if i++; i == n {
				i = 0
			}
			t.insertFrom(s, i, cd+1)
			t.n++
			return true
		}
		if i++; i == n {
			i = 0
		}
	}
}

// insert places s, known absent, Robin Hood style: it takes the slot of
// any entry nearer its home than s is, and carries that entry on.
func (t *table) insert(s slot) { t.insertFrom(s, t.home(&s.k), 0) }

// insertFrom goes on placing s from slot i, d slots past its home.
func (t *table) insertFrom(s slot, i, d int) {
	n := len(t.slots)
	for ; ; d++ {
		cur := &t.slots[i]
		if cur.packed&flagUsed == 0 {
			*cur = s
			return
		}
		if cd := t.dist(i); cd < d {
			s, *cur = *cur, s
			d = cd
		}
		if i++; i == n {
			i = 0
		}
	}
}

// del removes k and reports whether it was there. The caller has made t
// writable. Later entries of the run shift back one slot (no tombstones),
// and a table that fell below a quarter full shrinks.
func (t *table) del(k key) bool {
	i := t.find(&k)
	if i < 0 {
		return false
	}
	if t.slots[i].packed&flagSide != 0 {
		delete(t.side, k)
	}
	n := len(t.slots)
	for {
		j := i + 1
		if j == n {
			j = 0
		}
		if t.slots[j].packed&flagUsed == 0 || t.dist(j) == 0 {
			break
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = slot{}
	t.n--
	if len(t.slots) > minSlots*4 && t.n*4 < len(t.slots) {
		t.resize(t.n*2 + minSlots)
	}
	return true
}

// resize rehashes into size slots.
func (t *table) resize(size int) {
	old := t.slots
	t.slots = make([]slot, max(size, minSlots))
	for i := range old {
		if old[i].packed&flagUsed != 0 {
			t.insert(old[i])
		}
	}
}

// clone is a writable copy of t, for a writer that found t shared.
func (t *table) clone() *table {
	c := &table{slots: make([]slot, len(t.slots)), n: t.n}
	copy(c.slots, t.slots)
	if len(t.side) > 0 {
		c.side = make(map[key]sideRec, len(t.side))
		for k, v := range t.side {
			c.side[k] = v
		}
	}
	return c
}

// each calls fn for every record until fn returns false.
func (t *table) each(fn func(key, record) bool) bool {
	for i := range t.slots {
		if t.slots[i].packed&flagUsed != 0 && !fn(t.slots[i].k, t.decode(i)) {
			return false
		}
	}
	return true
}
