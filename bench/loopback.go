package bench

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// CheckTarget parses a node base URL and refuses anything that is not plain
// http(s) on 127.0.0.1, ::1 or localhost. It returns the URL without a
// trailing slash.
func CheckTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("target %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("target %q: give only scheme, host and port", raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("target %q refused: tokend-bench only targets 127.0.0.1 or localhost, got host %q", raw, u.Hostname())
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// loopbackDialer dials like net.Dialer but refuses connections whose remote
// end is not a loopback address, so neither a redirect nor a surprising
// /etc/hosts entry for "localhost" can point the load anywhere else.
func loopbackDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if !isLoopbackHost(host) {
			return nil, fmt.Errorf("refusing to dial %s: not a loopback address", addr)
		}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			c.Close()
			return nil, fmt.Errorf("refusing connection to %s: not a loopback address", c.RemoteAddr())
		}
		return c, nil
	}
}
