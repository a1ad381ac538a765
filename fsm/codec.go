package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
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

// decoder reads the codec's primitives from a command or result in memory
// (b) or, for a snapshot, from a stream (r). Both sources get the same
// checks: canonical varints, UTF-8 strings, booleans that are 0 or 1, and
// bounded lengths; the first failure sticks and every later read returns a
// zero value.
type decoder struct {
	b       []byte
	r       *bufio.Reader // when set, the input is r and b is unused
	err     error
	version byte // of the command being read
}

// streamBuffer is the read buffer a stream decoder needs: a string of
// maxString bytes must fit in one Peek.
const streamBuffer = maxString

func newStreamDecoder(r io.Reader) *decoder {
	return &decoder{r: bufio.NewReaderSize(r, streamBuffer)}
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

// peek returns up to n bytes of the input without consuming them; fewer
// only at its end. A stream's read error other than EOF fails d with it.
func (d *decoder) peek(n int) []byte {
	if d.err != nil {
		return nil
	}
	if d.r == nil {
		return d.b[:min(n, len(d.b))]
	}
	p, err := d.r.Peek(n)
	if err != nil && len(p) < n && !errors.Is(err, io.EOF) {
		d.err = err
		return nil
	}
	return p
}

// skip consumes n bytes that peek returned.
func (d *decoder) skip(n int) {
	if d.r == nil {
		d.b = d.b[n:]
		return
	}
	_, _ = d.r.Discard(n)
}

// take returns the next n bytes, valid until the next read, or fails.
func (d *decoder) take(n int) []byte {
	p := d.peek(n)
	if len(p) < n {
		d.fail()
		return nil
	}
	d.skip(n)
	return p
}

// atEnd reports whether all input was read.
func (d *decoder) atEnd() bool { return d.err == nil && len(d.peek(1)) == 0 }

func (d *decoder) byte() byte {
	p := d.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

// canonical reports whether the n-byte varint at the start of b is the
// shortest encoding of its value (only a one-byte varint may end in 0), so
// every value has exactly one accepted encoding.
func canonical(b []byte, n int) bool { return n == 1 || b[n-1] != 0 }

func (d *decoder) uvarint() uint64 {
	p := d.peek(binary.MaxVarintLen64)
	v, n := binary.Uvarint(p)
	if n <= 0 || !canonical(p, n) {
		d.fail()
		return 0
	}
	d.skip(n)
	return v
}

func (d *decoder) varint() int64 {
	p := d.peek(binary.MaxVarintLen64)
	v, n := binary.Varint(p)
	if n <= 0 || !canonical(p, n) {
		d.fail()
		return 0
	}
	d.skip(n)
	return v
}

func (d *decoder) hash() (h Hash) {
	copy(h[:], d.take(len(h)))
	return h
}

func (d *decoder) key() (k key) {
	copy(k[:], d.take(len(k)))
	return k
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > maxString {
		d.fail()
		return ""
	}
	s := d.take(int(n))
	if d.err != nil || !utf8.Valid(s) {
		d.fail()
		return ""
	}
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
	// In memory, every string takes at least a byte; a stream's length is
	// unknown, so its preallocation is capped instead.
	if d.err != nil || n > maxString || (d.r == nil && n > uint64(len(d.b))) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, min(n, 64))
	if d.r == nil {
		out = make([]string, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, d.string())
	}
	return out
}

// bytes writes b as a length and its bytes (binary, unlike string).
func (e *encoder) bytes(b []byte) {
	e.uvarint(uint64(len(b)))
	e.b = append(e.b, b...)
}

// bytes reads what encoder.bytes wrote, as a copy; an empty value is nil.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > maxString {
		d.fail()
		return nil
	}
	p := d.take(int(n))
	if d.err != nil || n == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}
