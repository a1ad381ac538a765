package httpapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
)

// Behind trusted proxies a failed sign-in counts against the client the
// proxies name; from any other peer the forwarding headers are ignored,
// so spoofing them neither spreads failures over made-up addresses nor
// pins them on someone else's.
func TestLoginTrustedProxies(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	e := newLTEnv(t, func(c *Config) { c.TrustedProxies = trusted })
	const attacker = "192.0.2.1:4000" // not a trusted proxy
	for i := 0; i < addrBudget; i++ {
		spoof := fmt.Sprintf("198.51.100.%d", i)
		e.wantGrant(e.grant(attacker, fmt.Sprintf("ghost%d", i), "guess",
			"X-Forwarded-For", spoof, "Forwarded", "for="+spoof, clientAddrHeader, spoof),
			http.StatusBadRequest, 0, "failure with spoofed headers")
	}
	e.wantGrant(e.grant(attacker, "victim", "victim-pw"), http.StatusTooManyRequests, 0,
		"the spoofing peer itself, once the budget is spent")

	const proxy = "10.1.2.3:5555"
	rows := []struct {
		header []string
		want   int
	}{
		{[]string{"X-Forwarded-For", "192.0.2.1"}, http.StatusTooManyRequests},
		{[]string{"X-Forwarded-For", "192.0.2.1, 10.9.9.9"}, http.StatusTooManyRequests}, // two trusted hops
		{[]string{"Forwarded", "for=192.0.2.1;proto=https"}, http.StatusTooManyRequests},
		{[]string{"Forwarded", `for="[2001:db8:ffff::1]", for=192.0.2.1:999`}, http.StatusTooManyRequests},
		{[]string{"X-Forwarded-For", "198.51.100.7"}, http.StatusOK}, // charged nothing while spoofed
		{[]string{"X-Forwarded-For", "192.0.2.1, 198.51.100.8"}, http.StatusOK},
		{[]string{"Forwarded", `for="[2001:db8::1]:4711"`}, http.StatusOK},
		{nil, http.StatusOK}, // the proxy itself was never charged
	}
	for _, rw := range rows {
		e.wantGrant(e.grant(proxy, "victim", "victim-pw", rw.header...), rw.want, 0, fmt.Sprintf("via the proxy with %q", rw.header))
	}
	// A peer outside the trusted prefixes is not a proxy, even with
	// the headers.
	e.wantGrant(e.grant("11.0.0.1:1", "victim", "victim-pw", "X-Forwarded-For", "192.0.2.1"), http.StatusOK, 0,
		"an untrusted peer naming the blocked address")
}

func TestResolveClient(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "127.0.0.1", "::1", "2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		peer    string
		xff     []string
		fwd     []string
		want    string
		comment string
	}{
		{"192.0.2.1", []string{"198.51.100.1"}, nil, "192.0.2.1", "untrusted peer: headers ignored"},
		{"10.0.0.1", nil, nil, "10.0.0.1", "trusted peer without headers is the client"},
		{"10.0.0.1", []string{"198.51.100.1"}, nil, "198.51.100.1", ""},
		{"10.0.0.1", []string{"203.0.113.5, 198.51.100.1"}, nil, "198.51.100.1", "rightmost untrusted"},
		{"10.0.0.1", []string{"198.51.100.1, 10.0.0.2"}, nil, "198.51.100.1", "skip trusted hops"},
		{"10.0.0.1", []string{"198.51.100.1", "10.0.0.2"}, nil, "198.51.100.1", "several header lines"},
		{"10.0.0.1", []string{"10.0.0.3, 10.0.0.2"}, nil, "10.0.0.3", "all trusted: leftmost"},
		{"10.0.0.1", []string{"198.51.100.1, garbage, 10.0.0.2"}, nil, "10.0.0.2", "garbage ends the walk"},
		{"10.0.0.1", []string{"garbage"}, nil, "10.0.0.1", ""},
		{"10.0.0.1", []string{""}, nil, "10.0.0.1", ""},
		{"10.0.0.1", []string{"198.51.100.1:8080"}, nil, "198.51.100.1", "with a port"},
		{"10.0.0.1", []string{"[2001:db8::5]:8080"}, nil, "2001:db8::5", ""},
		{"10.0.0.1", []string{"::ffff:198.51.100.1"}, nil, "198.51.100.1", "IPv4-mapped"},
		{"::ffff:127.0.0.1", []string{"198.51.100.1"}, nil, "198.51.100.1", "IPv4-mapped peer"},
		{"::1", []string{"2001:db8::5, 2001:db8:ffff::9"}, nil, "2001:db8::5", ""},
		{"10.0.0.1", nil, []string{"for=198.51.100.1"}, "198.51.100.1", ""},
		{"10.0.0.1", nil, []string{`For="198.51.100.1:80";proto=https;by=10.0.0.1`}, "198.51.100.1", ""},
		{"10.0.0.1", nil, []string{`for=203.0.113.5, for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17", ""},
		{"10.0.0.1", nil, []string{"for=203.0.113.5", "for=10.0.0.7"}, "203.0.113.5", ""},
		{"10.0.0.1", nil, []string{"for=203.0.113.5, for=unknown"}, "10.0.0.1", "unknown ends the walk"},
		{"10.0.0.1", nil, []string{"for=203.0.113.5, for=_hidden"}, "10.0.0.1", ""},
		{"10.0.0.1", nil, []string{"proto=https"}, "10.0.0.1", "no for="},
		{"10.0.0.1", nil, []string{`for=198.51.100.1;ext="a,b;c=d"`}, "198.51.100.1", "separators in a quoted string"},
		// Both headers: one is the proxy's, the other the client's.
		{"10.0.0.1", []string{"198.51.100.1"}, []string{"for=198.51.100.1"}, "198.51.100.1", "agree"},
		{"10.0.0.1", []string{"198.51.100.1"}, []string{"for=203.0.113.5"}, "10.0.0.1", "disagree: the peer"},
		{"10.0.0.1", []string{"10.0.0.9"}, []string{"for=203.0.113.5"}, "203.0.113.5", "only one names an untrusted address"},
		{"10.0.0.1", []string{"198.51.100.1"}, []string{"for=10.0.0.9"}, "198.51.100.1", ""},
	}
	for _, rw := range rows {
		h := http.Header{}
		for _, v := range rw.xff {
			h.Add("X-Forwarded-For", v)
		}
		for _, v := range rw.fwd {
			h.Add("Forwarded", v)
		}
		got := resolveClient(netip.MustParseAddr(rw.peer).Unmap(), h, trusted)
		if got.String() != rw.want {
			t.Errorf("peer %s XFF %q Forwarded %q: %s, want %s (%s)", rw.peer, rw.xff, rw.fwd, got, rw.want, rw.comment)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{" 10.1.2.3/8", "127.0.0.1", "::1", "::ffff:192.0.2.0/120", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128", "192.0.2.0/24"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "fe80::1%eth0", "10.0.0.1-10.0.0.9"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
