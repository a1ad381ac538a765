package bench

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
)

func TestRequestBuilders(t *testing.T) {
	ctx := context.Background()
	n := newNode("http://127.0.0.1:9/")
	c := newCreds("cl id", "s3cr:t")
	req := newValidateReq(ctx, n, "at_x")
	if req.Method != "GET" || req.URL.String() != "http://127.0.0.1:9/validate" || req.Header.Get("Authorization") != "Bearer at_x" {
		t.Fatalf("validate request: %s %s %v", req.Method, req.URL, req.Header)
	}
	req = newIssueCCReq(ctx, n, c)
	id, secret, ok := req.BasicAuth()
	if !ok || id != url.QueryEscape("cl id") || secret != url.QueryEscape("s3cr:t") {
		t.Fatalf("basic auth %q %q %v", id, secret, ok)
	}
	body, _ := io.ReadAll(req.Body)
	if req.URL.Path != "/token" || string(body) != "grant_type=client_credentials&scope=read" || req.Header.Get("Content-Type") != formType {
		t.Fatalf("issue-cc request: %s %q", req.URL, body)
	}
	req = newIssuePasswordReq(ctx, n, c, user{Tenant: "t", Username: "u&", Password: "p w"})
	_ = req.ParseForm()
	if req.PostForm.Get("grant_type") != "password" || req.PostForm.Get("username") != "u&" ||
		req.PostForm.Get("password") != "p w" || req.PostForm.Get("tenant_id") != "t" {
		t.Fatalf("password form %v", req.PostForm)
	}
	req = newRefreshReq(ctx, n, c, "rt_+/")
	_ = req.ParseForm()
	if req.PostForm.Get("refresh_token") != "rt_+/" || req.PostForm.Get("grant_type") != "refresh_token" {
		t.Fatalf("refresh form %v", req.PostForm)
	}
	for _, req := range []*http.Request{newRevokeReq(ctx, n, c, "at_y"), newIntrospectReq(ctx, n, c, "at_y")} {
		_ = req.ParseForm()
		if req.PostForm.Get("token") != "at_y" {
			t.Fatalf("%s form %v", req.URL, req.PostForm)
		}
	}
}

func TestJudges(t *testing.T) {
	ok := response{Status: 200, Body: []byte(`{"access_token":"at","refresh_token":"rt","expires_in":1800}`)}
	if tr, c := judgeToken(ok, nil, true); c != "" || tr.AccessToken != "at" || tr.RefreshToken != "rt" {
		t.Fatalf("judgeToken ok: %+v %q", tr, c)
	}
	if _, c := judgeToken(response{Status: 200, Body: []byte(`{"access_token":"at"}`)}, nil, true); c != "no-refresh-token" {
		t.Fatalf("missing refresh: %q", c)
	}
	if _, c := judgeToken(response{Status: 200, Body: []byte(`nope`)}, nil, false); c != "bad-body" {
		t.Fatalf("bad body: %q", c)
	}
	if _, c := judgeToken(response{Status: 503}, nil, false); c != "503" {
		t.Fatalf("503: %q", c)
	}
	if c := judgeStatus(response{}, errors.New("dial tcp: connection refused"), 200); c != "conn-refused" {
		t.Fatalf("transport: %q", c)
	}
	if c := judgeStatus(response{}, context.DeadlineExceeded, 200); c != "timeout" {
		t.Fatalf("timeout: %q", c)
	}
	if c := judgeStatus(response{Status: 401}, nil, 200); c != "401" {
		t.Fatalf("401: %q", c)
	}
	for body, want := range map[string]string{`{"active":true}`: "", `{"active":false}`: "inactive", `{}`: "bad-body"} {
		if c := judgeIntrospect(response{Status: 200, Body: []byte(body)}, nil); c != want {
			t.Errorf("introspect %s: %q want %q", body, c, want)
		}
	}
}

func TestJudgeVisibility(t *testing.T) {
	cases := []struct {
		status    int
		err       error
		wantValid bool
		verdict   int
		class     string
	}{
		{200, nil, true, verdictFresh, ""},
		{401, nil, true, verdictStale, "stale"},
		{401, nil, false, verdictFresh, ""},
		{200, nil, false, verdictStale, "stale"},
		{503, nil, true, verdictError, "503"},
		{503, nil, false, verdictError, "503"},
		{0, errors.New("EOF"), true, verdictError, "conn-reset"},
	}
	for _, c := range cases {
		v, cl := judgeVisibility(response{Status: c.status}, c.err, c.wantValid)
		if v != c.verdict || cl != c.class {
			t.Errorf("%d/%v/%v: got %d %q want %d %q", c.status, c.err, c.wantValid, v, cl, c.verdict, c.class)
		}
	}
}
