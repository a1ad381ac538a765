package main

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestTrustedProxiesFlag(t *testing.T) {
	c, err := parseServe([]string{"--node-id", "n1", "--trusted-proxies", "10.0.0.0/8, 127.0.0.1", "--trusted-proxies", "::1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.proxies); got != "[10.0.0.0/8 127.0.0.1/32 ::1/128]" {
		t.Errorf("--trusted-proxies: %s", got)
	}
	t.Setenv("TOKEND_TRUSTED_PROXIES", "192.0.2.0/24")
	if c, err = parseServe([]string{"--node-id", "n1"}, io.Discard); err != nil || fmt.Sprint(c.proxies) != "[192.0.2.0/24]" {
		t.Errorf("TOKEND_TRUSTED_PROXIES: %v %v", c, err)
	}
	if _, err := parseServe([]string{"--node-id", "n1", "--trusted-proxies", "proxy.example"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--trusted-proxies") {
		t.Errorf("a host name was accepted: %v", err)
	}
}
