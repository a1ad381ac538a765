package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokend/tokend/fsm"
)

// A node that may not serve reads answers every endpoint that depends on
// local state with 503 and Retry-After, never with an answer (such as
// invalid_client) drawn from state that may be behind.
func TestUnreadyNodeAnswers503(t *testing.T) {
	f := fsm.New()
	s, err := New(Config{FSM: f, Replicator: &unreadyReplicator{memReplicator{f: f}}, AdminToken: testAdminToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	form := "application/x-www-form-urlencoded"
	for _, c := range []struct{ method, path, ctype, body, auth string }{
		{"POST", "/token", form, "grant_type=client_credentials&client_id=x&client_secret=y", ""},
		{"POST", "/oauth/token", form, "grant_type=password&username=a&password=b&client_id=x", ""},
		{"POST", "/revoke", form, "token=t&client_id=x&client_secret=y", ""},
		{"POST", "/introspect", form, "token=t&client_id=x&client_secret=y", ""},
		{"GET", "/validate", "", "", "Bearer tkda-x"},
		{"GET", "/readyz", "", "", ""},
		{"GET", "/admin/clients", "", "", "Bearer " + testAdminToken},
		{"GET", "/authorize?response_type=code&client_id=x", "", "", ""},
		{"GET", "/userinfo", "", "", "Bearer tkda-x"},
		{"POST", "/end_session", form, "client_id=x", ""},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %d Retry-After=%q %s", c.method, c.path, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200 (the process is up)", rec.Code)
	}
	// /cluster/status is how an operator finds out why: it answers
	// without a lease.
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/cluster/status", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("/cluster/status: %d, want 200 on an unready node: %s", rec.Code, rec.Body)
	}
}
