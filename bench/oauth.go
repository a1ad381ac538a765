package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// This file holds the pure halves of every operation: building requests
// from a node and credentials, and judging responses into "ok" (an empty
// class) or an error class. Nothing here does I/O, so the scenario logic is
// unit-testable without a server.

// node is one target's precomputed endpoint URLs.
type node struct {
	Base       string
	Validate   string
	Token      string
	Introspect string
	Revoke     string
	ep         *endpoint // where the wire client connects
}

// endpoint is what the wire client needs to reach a node: the address to
// dial, the Host header, whether to speak TLS, and where the path starts
// in the node's URLs (so a request's target is a substring, not a parse).
type endpoint struct {
	addr      string // host:port
	host      string // Host header
	tls       bool
	originLen int // len("scheme://host")
}

func newNode(base string) node {
	base = strings.TrimRight(base, "/")
	return node{
		Base:       base,
		Validate:   base + "/validate",
		Token:      base + "/token",
		Introspect: base + "/introspect",
		Revoke:     base + "/revoke",
		ep:         newEndpoint(base),
	}
}

func newEndpoint(base string) *endpoint {
	ep := &endpoint{}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return ep // unusable: dialing it fails with a clear error
	}
	ep.host, ep.tls = u.Host, u.Scheme == "https"
	ep.originLen = len(u.Scheme) + len("://") + len(u.Host)
	ep.addr = u.Host
	if u.Port() == "" {
		port := "80"
		if ep.tls {
			port = "443"
		}
		ep.addr = net.JoinHostPort(u.Hostname(), port)
	}
	return ep
}

// creds is a confidential client with its precomputed Basic header
// (client_secret_basic, RFC 6749 §2.3.1: form-encode, then base64).
type creds struct {
	ClientID string
	Secret   string
	basic    string
}

func newCreds(id, secret string) creds {
	raw := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return creds{ClientID: id, Secret: secret, basic: "Basic " + base64.StdEncoding.EncodeToString([]byte(raw))}
}

// user is a seeded resource owner.
type user struct {
	Tenant, Username, Password string
}

const formType = "application/x-www-form-urlencoded"

// request is one OAuth call in a transport-neutral form. The hot path
// writes it straight onto a connection (wire.go) without parsing a URL or
// building a header map; http turns it into a *http.Request for the
// net/http paths (seeding, probing, visibility checks). The Authorization
// value is authScheme+auth, kept apart so "Bearer "+token is never
// concatenated per request.
type request struct {
	method     string
	url        string
	ep         *endpoint
	authScheme string
	auth       string
	form       string // x-www-form-urlencoded body; POST only
}

// path is the request target: the URL minus scheme and host.
func (r *request) path() string {
	if r.ep == nil || r.ep.originLen >= len(r.url) {
		return "/"
	}
	return r.url[r.ep.originLen:]
}

// http builds the equivalent *http.Request.
func (r *request) http(ctx context.Context) *http.Request {
	var body io.Reader
	if r.method == http.MethodPost {
		body = strings.NewReader(r.form)
	}
	req, _ := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if r.method == http.MethodPost {
		req.Header["Content-Type"] = []string{formType}
	}
	req.Header["Authorization"] = []string{r.authScheme + r.auth}
	return req
}

func validateRequest(n node, token string) request {
	return request{method: http.MethodGet, url: n.Validate, ep: n.ep, authScheme: "Bearer ", auth: token}
}

func formRequest(n node, target string, c creds, form string) request {
	return request{method: http.MethodPost, url: target, ep: n.ep, auth: c.basic, form: form}
}

func issueCCRequest(n node, c creds) request {
	return formRequest(n, n.Token, c, "grant_type=client_credentials&scope=read")
}

func issuePasswordRequest(n node, c creds, u user) request {
	v := url.Values{
		"grant_type": {"password"},
		"username":   {u.Username},
		"password":   {u.Password},
		"scope":      {"read"},
	}
	if u.Tenant != "" {
		v.Set("tenant_id", u.Tenant)
	}
	return formRequest(n, n.Token, c, v.Encode())
}

func refreshRequest(n node, c creds, refresh string) request {
	return formRequest(n, n.Token, c, "grant_type=refresh_token&refresh_token="+url.QueryEscape(refresh))
}

func introspectRequest(n node, c creds, token string) request {
	return formRequest(n, n.Introspect, c, "token="+url.QueryEscape(token))
}

func revokeRequest(n node, c creds, token string) request {
	return formRequest(n, n.Revoke, c, "token="+url.QueryEscape(token))
}

// The *http.Request forms, for the paths that use net/http.

func newValidateReq(ctx context.Context, n node, token string) *http.Request {
	r := validateRequest(n, token)
	return r.http(ctx)
}

func newIssueCCReq(ctx context.Context, n node, c creds) *http.Request {
	r := issueCCRequest(n, c)
	return r.http(ctx)
}

func newIssuePasswordReq(ctx context.Context, n node, c creds, u user) *http.Request {
	r := issuePasswordRequest(n, c, u)
	return r.http(ctx)
}

func newRefreshReq(ctx context.Context, n node, c creds, refresh string) *http.Request {
	r := refreshRequest(n, c, refresh)
	return r.http(ctx)
}

func newIntrospectReq(ctx context.Context, n node, c creds, token string) *http.Request {
	r := introspectRequest(n, c, token)
	return r.http(ctx)
}

func newRevokeReq(ctx context.Context, n node, c creds, token string) *http.Request {
	r := revokeRequest(n, c, token)
	return r.http(ctx)
}

// tokenResponse is the part of a /token answer the bench uses.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
}

// judgeStatus is the judge for endpoints where only the status matters.
func judgeStatus(r response, err error, want int) string {
	if err != nil || r.Status != want {
		return errorClass(r.Status, err)
	}
	return ""
}

// judgeToken accepts a 200 with a JSON body carrying an access token (and a
// refresh token when wantRefresh).
func judgeToken(r response, err error, wantRefresh bool) (tokenResponse, string) {
	var tr tokenResponse
	if err != nil || r.Status != http.StatusOK {
		return tr, errorClass(r.Status, err)
	}
	if json.Unmarshal(r.Body, &tr) != nil || tr.AccessToken == "" {
		return tr, "bad-body"
	}
	if wantRefresh && tr.RefreshToken == "" {
		return tr, "no-refresh-token"
	}
	return tr, ""
}

// judgeIntrospect accepts a 200 whose body says active:true. An inactive
// answer for a token that should be live is its own error class.
func judgeIntrospect(r response, err error) string {
	if err != nil || r.Status != http.StatusOK {
		return errorClass(r.Status, err)
	}
	var v struct {
		Active *bool `json:"active"`
	}
	if json.Unmarshal(r.Body, &v) != nil || v.Active == nil {
		return "bad-body"
	}
	if !*v.Active {
		return "inactive"
	}
	return ""
}

// Visibility verdicts for one validation made right after a write was
// acknowledged.
const (
	verdictFresh = iota // the answer reflects the acknowledged write
	verdictStale        // the answer contradicts it
	verdictError        // neither (e.g. 503 while the node has no lease): an error, not stale
)

// judgeVisibility classifies a /validate answer given whether the token
// should be valid (after an issue) or invalid (after a revoke). 503 is
// allowed by the contract (no read lease) and counts as an error, never as
// stale.
func judgeVisibility(r response, err error, wantValid bool) (verdict int, class string) {
	if err != nil {
		return verdictError, errorClass(0, err)
	}
	switch r.Status {
	case http.StatusOK:
		if wantValid {
			return verdictFresh, ""
		}
		return verdictStale, "stale"
	case http.StatusUnauthorized:
		if !wantValid {
			return verdictFresh, ""
		}
		return verdictStale, "stale"
	default:
		return verdictError, errorClass(r.Status, nil)
	}
}
