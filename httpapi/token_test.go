package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// Repeated wrong passwords on the password grant are slowed down with 429
// and Retry-After, and the real password still works once the wait is over.
func TestPasswordGrantLimiter(t *testing.T) {
	s, f := newMemServer(t)
	f.Apply(100, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "app", SecretHash: fsm.HashOf("sec"),
		GrantTypes: []string{"password"}, Scopes: []string{"read"}}}))
	f.Apply(101, fsm.Encode(&fsm.PutUser{Create: true, User: fsm.User{Tenant: "default", Username: "ann", PasswordHash: HashPassword("right")}}))
	try := func(password string) *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"password"}, "username": {"ann"}, "password": {password}}
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", "sec")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	for i := 0; i < userFreeFailures; i++ {
		if rec := try("wrong"); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"invalid_grant"`) {
			t.Fatalf("failure %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := try("right")
	var body map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || body["error"] != "temporarily_unavailable" {
		t.Fatalf("after %d failures: %d Retry-After=%q %s", userFreeFailures, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	clock := s.now()
	s.limiter.now = func() time.Time { return clock.Add(userMaxBackoff) }
	if rec := try("right"); rec.Code != http.StatusOK {
		t.Fatalf("after the lockout: %d %s", rec.Code, rec.Body)
	}
}
