package httpapi

import (
	"errors"
	"net/url"
	"strings"
)

// maxFastParams is the most parameters parseQuery parses itself; a body
// with more goes to url.ParseQuery, with its own limit on the count. OAuth
// requests carry a handful, so nothing legitimate takes the slow path, and
// a body of ampersands cannot make parseQuery preallocate much.
const maxFastParams = 16

var errSemicolon = errors.New("invalid semicolon separator in query")

// parseQuery is url.ParseQuery for a form body in fewer allocations: the
// map is sized for the parameters counted and the value slices share one
// backing array (a repeated key appends, which copies, so the shared array
// is never written past a key's own element). It keeps url.ParseQuery's
// rules: pairs split at '&', empty ones skipped, a ';' in a pair refused,
// a pair without '=' has an empty value, keys and values query-unescaped.
// On error the values are not to be used (readForm refuses the body).
func parseQuery(s string) (url.Values, error) {
	n := strings.Count(s, "&") + 1
	if n > maxFastParams {
		return url.ParseQuery(s)
	}
	m := make(url.Values, n)
	vals := make([]string, n)
	used := 0
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if strings.Contains(pair, ";") {
			return nil, errSemicolon
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		if v, err = url.QueryUnescape(v); err != nil {
			return nil, err
		}
		if prev, ok := m[k]; ok {
			m[k] = append(prev, v)
			continue
		}
		vals[used] = v
		m[k] = vals[used : used+1 : used+1]
		used++
	}
	return m, nil
}
