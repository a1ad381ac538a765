package httpapi

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Client addresses for the login limiter.
//
// The address a sign-in counts against (limiter.go) is the TCP peer's,
// unless the peer is one of Config.TrustedProxies. Then X-Forwarded-For
// and Forwarded (RFC 7239) name the client: each chain is walked from the
// right, skipping trusted proxies, and the first address that is not one
// is the client. A chain whose every hop is trusted gives its leftmost
// hop; a hop that is not an IP address (garbage, "unknown", an obfuscated
// identifier) ends the walk at the trusted hop that reported it. Headers
// from a peer that is not a trusted proxy are never read, so a client
// cannot choose the address it is counted against.
//
// A proxy writes one of the two headers and passes the other through as
// the client sent it, so when both are present tokend cannot tell which is
// genuine: it takes the one that names an untrusted address, and if both
// do and they disagree, the peer itself, which only ever costs the
// spoofer (real clients send no such headers).
//
// A sign-in handed off from another node (handoff.go) counts against the
// address the forwarding node resolved, which it sends in
// clientAddrHeader over the cluster's mutually authenticated port;
// HandOffHandler alone reads that header, and ServeHTTP drops it.

// clientAddrHeader carries a handed-off sign-in's client address.
const clientAddrHeader = "X-Tokend-Client-Addr"

type ctxKey int

// clientAddrKey holds, in a handed-off request's context, the client
// address the forwarding node sent.
const clientAddrKey ctxKey = 0

// ParseTrustedProxies parses CIDR prefixes and single addresses (a /32 or
// /128) for Config.TrustedProxies.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Zone() != "" {
				return nil, errors.New("trusted proxy " + s + ": zones are not supported")
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, errors.New("trusted proxy " + s + " is not an IP address or CIDR prefix")
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// clientAddr is the TCP peer's IP (RemoteAddr as given when it has none).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// originAddr is the address a sign-in (or an admin authentication)
// counts against: the one a forwarding node sent with a hand-off, else the
// client that the trusted proxies name, else the TCP peer.
func (s *Server) originAddr(r *http.Request) string {
	if a, ok := r.Context().Value(clientAddrKey).(netip.Addr); ok {
		return a.String()
	}
	peer := clientAddr(r)
	if len(s.cfg.TrustedProxies) == 0 {
		return peer
	}
	ip, err := netip.ParseAddr(peer)
	if err != nil {
		return peer
	}
	return resolveClient(ip.Unmap(), r.Header, s.cfg.TrustedProxies).String()
}

// resolveClient walks the forwarding headers of a request from peer, a
// trusted proxy (see the comment at the top of this file).
func resolveClient(peer netip.Addr, h http.Header, trusted []netip.Prefix) netip.Addr {
	if !isTrusted(peer, trusted) {
		return peer
	}
	var xff, fwd []string
	for _, v := range h.Values("X-Forwarded-For") {
		for _, e := range strings.Split(v, ",") {
			xff = append(xff, strings.TrimSpace(e))
		}
	}
	if vs := h.Values("Forwarded"); len(vs) > 0 {
		fwd = forwardedFor(vs)
	}
	x, xUntrusted := walkChain(peer, xff, trusted)
	f, fUntrusted := walkChain(peer, fwd, trusted)
	switch {
	case len(fwd) == 0:
		return x
	case len(xff) == 0:
		return f
	case xUntrusted && fUntrusted && x != f:
		return peer
	case fUntrusted && !xUntrusted:
		return f
	}
	return x
}

// walkChain returns the rightmost address of chain that is not trusted,
// and true; or, when there is none, the last trusted hop reached (peer for
// an empty chain), and false.
func walkChain(peer netip.Addr, chain []string, trusted []netip.Prefix) (netip.Addr, bool) {
	last := peer
	for i := len(chain) - 1; i >= 0; i-- {
		a, ok := parseNode(chain[i])
		if !ok {
			return last, false
		}
		if !isTrusted(a, trusted) {
			return a, true
		}
		last = a
	}
	return last, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseNode reads an address as the headers write it: bare, with a port,
// or an IPv6 address in brackets with or without one.
func parseNode(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || (end+1 < len(s) && s[end+1] != ':') {
			return netip.Addr{}, false
		}
		s = s[1:end]
	} else if a, err := netip.ParseAddrPort(s); err == nil {
		return a.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// forwardedFor returns the for= node of each element of Forwarded header
// values (RFC 7239 §4), in order; "" for an element without one.
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range splitUnquoted(v, ',') {
			node := ""
			for _, pair := range splitUnquoted(elem, ';') {
				k, val, ok := strings.Cut(pair, "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
					node = unquote(strings.TrimSpace(val))
				}
			}
			out = append(out, node)
		}
	}
	return out
}

// splitUnquoted splits s at sep outside quoted strings.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote removes an RFC 7230 quoted string's quotes and escapes.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
