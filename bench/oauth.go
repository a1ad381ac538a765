package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
}

func newNode(base string) node {
	base = strings.TrimRight(base, "/")
	return node{
		Base:       base,
		Validate:   base + "/validate",
		Token:      base + "/token",
		Introspect: base + "/introspect",
		Revoke:     base + "/revoke",
	}
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

func newValidateReq(ctx context.Context, n node, token string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.Validate, nil)
	req.Header["Authorization"] = []string{"Bearer " + token}
	return req
}

func newFormReq(ctx context.Context, target string, c creds, form string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form))
	req.Header["Content-Type"] = []string{formType}
	req.Header["Authorization"] = []string{c.basic}
	return req
}

func newIssueCCReq(ctx context.Context, n node, c creds) *http.Request {
	return newFormReq(ctx, n.Token, c, "grant_type=client_credentials&scope=read")
}

func newIssuePasswordReq(ctx context.Context, n node, c creds, u user) *http.Request {
	v := url.Values{
		"grant_type": {"password"},
		"username":   {u.Username},
		"password":   {u.Password},
		"scope":      {"read"},
	}
	if u.Tenant != "" {
		v.Set("tenant_id", u.Tenant)
	}
	return newFormReq(ctx, n.Token, c, v.Encode())
}

func newRefreshReq(ctx context.Context, n node, c creds, refresh string) *http.Request {
	return newFormReq(ctx, n.Token, c, "grant_type=refresh_token&refresh_token="+url.QueryEscape(refresh))
}

func newIntrospectReq(ctx context.Context, n node, c creds, token string) *http.Request {
	return newFormReq(ctx, n.Introspect, c, "token="+url.QueryEscape(token))
}

func newRevokeReq(ctx context.Context, n node, c creds, token string) *http.Request {
	return newFormReq(ctx, n.Revoke, c, "token="+url.QueryEscape(token))
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
