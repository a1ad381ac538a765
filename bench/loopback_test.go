package bench

import (
	"context"
	"strings"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	ok := map[string]string{
		"http://127.0.0.1:8080":  "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/": "http://127.0.0.1:8080",
		"http://localhost:1":     "http://localhost:1",
		"https://LOCALHOST:8443": "https://LOCALHOST:8443",
		"http://[::1]:8080":      "http://[::1]:8080",
		"http://127.0.0.2:9":     "http://127.0.0.2:9",
	}
	for in, want := range ok {
		got, err := CheckTarget(in)
		if err != nil || got != want {
			t.Errorf("CheckTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"http://10.1.2.3:8080", "http://example.com", "http://localhost.evil.com", "ftp://127.0.0.1",
		"127.0.0.1:8080", "http://0.0.0.0:8080", "http://user:pw@127.0.0.1", "http://[2001:db8::1]:80",
	} {
		if _, err := CheckTarget(bad); err == nil {
			t.Errorf("CheckTarget(%q) accepted", bad)
		}
	}
}

func TestLoopbackDialerRefusesRemote(t *testing.T) {
	dial := loopbackDialer()
	_, err := dial(context.Background(), "tcp", "192.0.2.1:80")
	if err == nil || !strings.Contains(err.Error(), "not a loopback") {
		t.Fatalf("dial to a non-loopback address: %v", err)
	}
}
