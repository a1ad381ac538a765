package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The JWT scenarios seed a client registered for JWT access tokens; the
// others send no access_token_format at all, so a build without JWT
// access tokens (bench/before-after.sh) still accepts their registration.
func TestSeedJWTClient(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = nil
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"client_id":"c","client_secret":"s"}`))
	}))
	t.Cleanup(srv.Close)
	s := &seeder{client: srv.Client(), nodes: []node{newNode(srv.URL)}, admin: "adm", runID: "t"}
	for _, tc := range []struct {
		scenario string
		want     any
	}{{ScenarioIssueCCJWT, "jwt"}, {ScenarioValidateJWT, "jwt"}, {ScenarioIssueCC, nil}, {ScenarioValidate, nil}} {
		cfg := DefaultConfig()
		cfg.Scenario = tc.scenario
		need := needsFor(&cfg, nil)
		if _, err := s.createClient(context.Background(), need.jwt); err != nil {
			t.Fatal(err)
		}
		if got["access_token_format"] != tc.want {
			t.Errorf("%s: access_token_format %v, want %v", tc.scenario, got["access_token_format"], tc.want)
		}
		if tc.scenario == ScenarioValidateJWT && need.tokens == 0 {
			t.Errorf("validate-jwt seeds no tokens")
		}
	}
}
