package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokend/tokend/fsm"
)

// FuzzTokenRequest throws arbitrary bodies, content types and Basic
// credentials at /token. The endpoint must never panic or answer 5xx, and
// every error must be RFC 6749 §5.2 JSON.
func FuzzTokenRequest(f *testing.F) {
	s, state := newMemServer(f)
	secret := "tkds-fuzzsecret"
	state.Apply(1_000_000, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{
		ID: "fuzz", SecretHash: fsm.HashOf(secret), Scopes: []string{"read", "write"},
		GrantTypes: []string{"client_credentials", "password", "refresh_token", "authorization_code"},
	}}))
	seeds := []string{
		"grant_type=client_credentials&client_id=fuzz&client_secret=" + secret,
		"grant_type=client_credentials&scope=read+write&client_id=fuzz&client_secret=" + secret,
		"grant_type=password&username=a&password=b&client_id=fuzz&client_secret=" + secret,
		"grant_type=refresh_token&refresh_token=x&client_id=fuzz&client_secret=" + secret,
		"grant_type=authorization_code&code=x&code_verifier=abc&client_id=fuzz&client_secret=" + secret,
		"grant_type=nope&client_id=fuzz", "grant_type=a&grant_type=b", "%zz", "client_id=\xff",
	}
	for _, body := range seeds {
		f.Add(body, "application/x-www-form-urlencoded", "")
	}
	f.Add("grant_type=client_credentials", "application/x-www-form-urlencoded", "fuzz:"+secret)
	f.Add("{}", "application/json", "fuzz%3A:x")
	f.Fuzz(func(t *testing.T, body, contentType, basic string) {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if user, pass, ok := strings.Cut(basic, ":"); ok {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("non-JSON answer %d: %q", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if _, ok := out["error"].(string); !ok {
				t.Fatalf("error answer without error code: %s", rec.Body)
			}
		} else if _, ok := out["access_token"].(string); !ok {
			t.Fatalf("200 without access_token: %s", rec.Body)
		}
	})
}
