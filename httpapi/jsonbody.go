package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// The token and introspection answers are the hot path's only bodies, and
// their shapes are fixed, so they are appended by hand into a pooled
// buffer instead of going through encoding/json's reflection: that saved
// an encoder, its buffer and the header values per request. The output is
// byte for byte what json.NewEncoder(w).Encode would write for the same
// struct (token_test.go checks it against encoding/json), including the
// trailing newline and HTML-safe escaping.

// Shared header values for the hand-written answers. net/http only reads
// them, and Header().Set or Add replace or reallocate rather than write
// into a slice, so one value serves every response.
var (
	headerJSON    = []string{"application/json; charset=utf-8"}
	headerNoStore = []string{"no-store"}
	headerNoCache = []string{"no-cache"}
)

// bodyPool holds response buffers; a token answer is under 400 bytes.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeBody sends b as a JSON body with status and returns the buffer to
// the pool (net/http copies what Write is given before it returns).
func writeBody(w http.ResponseWriter, status int, buf *[]byte) {
	w.Header()["Content-Type"] = headerJSON
	w.WriteHeader(status)
	_, _ = w.Write(*buf)
	if cap(*buf) <= 4096 {
		*buf = (*buf)[:0]
		bodyPool.Put(buf)
	}
}

// jsonObject appends the members of one JSON object, in call order.
type jsonObject struct{ b []byte }

func (o *jsonObject) key(k string) {
	if len(o.b) == 0 || o.b[len(o.b)-1] != '{' {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.b = appendJSONString(o.b, v)
}

// strOmit is str for an omitempty field.
func (o *jsonObject) strOmit(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *jsonObject) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) uint(k string, v uint64) {
	o.key(k)
	o.b = strconv.AppendUint(o.b, v, 10)
}

func (o *jsonObject) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it. Tokens, ids, scopes and dates are printable ASCII without
// anything to escape, so that is the fast path; anything else (quotes,
// HTML characters, control characters, non-ASCII, invalid UTF-8) goes
// through encoding/json itself, so the escaping rules live in one place.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
