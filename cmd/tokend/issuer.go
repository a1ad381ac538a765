package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// checkIssuer requires --issuer for a cluster and checks its form. The
// issuer identifies the service, not a node: every node of a cluster must
// announce the same one in metadata, introspection and authorization
// responses (RFC 8414 §2, RFC 9207), and the default, the node's own
// --http-addr, differs from node to node.
func (c *serveConfig) checkIssuer() error {
	if c.issuer == "" {
		if c.bootstrapExpect > 1 || len(c.join) > 0 {
			return errors.New("--issuer is required for a cluster (--bootstrap-expect > 1 or --join): " +
				"give every node the same URL, the one clients reach the service by (e.g. --issuer https://auth.example.com); " +
				"without it each node would announce its own --http-addr as the issuer")
		}
		return nil
	}
	u, err := url.Parse(c.issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasPrefix(c.issuer, u.Scheme+"://") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || strings.Contains(c.issuer, "#") || strings.HasSuffix(c.issuer, "/") {
		return fmt.Errorf("--issuer %q must be an http or https URL with a host and no user, query, fragment or trailing slash (RFC 8414), e.g. https://auth.example.com", c.issuer)
	}
	return nil
}

// hstsValue is sent when the issuer is https: a year, this host only
// (includeSubDomains would bind every name under it, which is the
// operator's call, at the proxy).
const hstsValue = "max-age=31536000"

// withHSTS adds Strict-Transport-Security to every response when the
// issuer is https, whether this node terminates TLS itself or sits behind
// a proxy that does. A dev node never sends it: a browser would then
// refuse plain HTTP to localhost, on every port, for a year.
func withHSTS(issuer string, dev bool, h http.Handler) http.Handler {
	if dev || !strings.HasPrefix(issuer, "https://") {
		return h
	}
	// One shared value slice: Header().Set would allocate one per request,
	// and this wraps the /validate hot path too. net/http only reads it.
	value := []string{hstsValue}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Strict-Transport-Security"] = value
		h.ServeHTTP(w, r)
	})
}
