package fsm

import "testing"

// TestHasRedirectURILoopbackAnyPort: RFC 8252 §7.3 lets a native app's
// loopback redirect use any port; everything else still matches exactly.
func TestHasRedirectURILoopbackAnyPort(t *testing.T) {
	c := &Client{RedirectURIs: []string{
		"http://127.0.0.1/cb", "http://[::1]:8000/cb?x=1", "http://localhost:9000/cb",
		"https://app.example/cb", "com.example.app:/cb",
	}}
	for uri, want := range map[string]bool{
		"http://127.0.0.1/cb":         true,
		"http://127.0.0.1:51004/cb":   true,
		"http://127.0.0.1:80/cb":      true,
		"http://[::1]/cb?x=1":         true,
		"http://[::1]:61000/cb?x=1":   true,
		"http://localhost:9000/cb":    true,
		"https://app.example/cb":      true,
		"com.example.app:/cb":         true,
		"http://127.0.0.1:51004/cb2":  false, // path differs
		"http://127.0.0.1:51004/cb?y": false, // query differs
		"http://127.0.0.1:0x50/cb":    false,
		"http://127.0.0.1:070/cb":     false,
		"http://127.0.0.2:51004/cb":   false, // another host
		"http://[::1]:61000/cb":       false, // query missing
		"http://localhost:9001/cb":    false, // localhost: exact only
		"http://localhost/cb":         false,
		"https://127.0.0.1:51004/cb":  false, // scheme differs
		"https://app.example:444/cb":  false,
		"http://u@127.0.0.1:5/cb":     false,
		"http://127.0.0.1:5/cb#f":     false,
	} {
		if got := c.HasRedirectURI(uri); got != want {
			t.Errorf("HasRedirectURI(%q) = %v, want %v", uri, got, want)
		}
	}
}
