package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientIntrospectFlag: tokend client create and update send the
// --introspect flag as the admin API's "introspect" field, false when it is
// left out (update replaces the whole registration).
func TestClientIntrospectFlag(t *testing.T) {
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("%s %s: body %q: %v", r.Method, r.URL.Path, b, err)
		}
		body["method"] = r.Method + " " + r.URL.Path
		got = append(got, body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	tokend := func(args ...string) {
		t.Helper()
		var out strings.Builder
		args = append(args, "--addr", srv.URL, "--admin-token", testAdminToken)
		if err := run(withTimeout(t), args, &out, &out); err != nil {
			t.Fatalf("tokend %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	tokend("client", "create", "--name", "api", "--grant", "client_credentials", "--introspect")
	tokend("client", "create", "--name", "svc", "--grant", "client_credentials")
	tokend("client", "update", "abc", "--name", "api", "--grant", "client_credentials", "--introspect")
	tokend("client", "update", "abc", "--name", "api", "--grant", "client_credentials")
	want := []struct {
		method     string
		introspect bool
	}{{"POST /admin/clients", true}, {"POST /admin/clients", false}, {"PUT /admin/clients/abc", true}, {"PUT /admin/clients/abc", false}}
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i]["method"] != w.method || got[i]["introspect"] != w.introspect {
			t.Errorf("request %d: %v, want %s with introspect %v", i, got[i], w.method, w.introspect)
		}
	}
}
