package fsm

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// The wire format is deliberately plain: unsigned varints for lengths, counts
// and ids, zig-zag varints for timestamps, raw 32-byte hashes. It is compact
// (an issue command is about 120 bytes), needs no reflection, and the
// decoder rejects anything short, overlong or not UTF-8 without panicking.

var errShort = errors.New("fsm: truncated or malformed encoding")

// maxString bounds any decoded string or list so a corrupt length cannot make
// the decoder allocate gigabytes.
const maxString = 1 << 20

type encoder struct {
	b       []byte
	version byte // of the command being written
}

func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) hash(h Hash)      { e.b = append(e.b, h[:]...) }
func (e *encoder) key(k key)        { e.b = append(e.b, k[:]...) }
func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}
func (e *encoder) strings(list []string) {
	e.uvarint(uint64(len(list)))
	for _, s := range list {
		e.string(s)
	}
}

type decoder struct {
	b       []byte
	err     error
	version byte // of the command being read
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// canonical reports whether the n-byte varint at the start of b is the
// shortest encoding of its value (only a one-byte varint may end in 0), so
// every value has exactly one accepted encoding.
func canonical(b []byte, n int) bool { return n == 1 || b[n-1] != 0 }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || !canonical(d.b, n) {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || !canonical(d.b, n) {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) hash() (h Hash) {
	if len(d.b) < len(h) {
		d.fail()
		return h
	}
	copy(h[:], d.b)
	d.b = d.b[len(h):]
	return h
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > maxString || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := d.b[:n]
	if !utf8.Valid(s) {
		d.fail()
		return ""
	}
	d.b = d.b[n:]
	return string(s)
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *decoder) strings() []string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) || n > maxString {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, d.string())
	}
	return out
}
