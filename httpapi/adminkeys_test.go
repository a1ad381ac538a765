package httpapi_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
	"github.com/tokend/tokend/keys"
)

// *keys.Manager is what cmd/tokend passes as both.
var (
	_ httpapi.Signer   = (*keys.Manager)(nil)
	_ httpapi.KeyAdmin = (*keys.Manager)(nil)
)

const keysAdminToken = "test-admin-token-0123456789abcdef0123456789"

func newKeysServer(t *testing.T, withKeys bool) (*httptest.Server, *fsm.FSM) {
	t.Helper()
	f := fsm.New()
	rep := httpapi.NewMemReplicator(f)
	cfg := httpapi.Config{FSM: f, Replicator: rep, Issuer: "http://tokend.test", AdminToken: keysAdminToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if withKeys {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		sealer, err := keys.NewSealer(secret)
		if err != nil {
			t.Fatal(err)
		}
		m, err := keys.New(keys.Config{FSM: f, Apply: rep.Apply, Sealer: sealer, Algs: []string{keys.ES256, keys.EdDSA}})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Signer, cfg.Keys = m, m
	}
	s, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, f
}

func adminCall(t *testing.T, method, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type keyListing []struct {
	ID, Alg, State, Created, Retired string
	RemoveAt                         string `json:"remove_at"`
}

// TestAdminKeys: list before and after the first keys and a rotation;
// the admin token is required; no key material in any answer.
func TestAdminKeys(t *testing.T) {
	srv, f := newKeysServer(t, true)
	if code, _ := adminCall(t, http.MethodGet, srv.URL+"/admin/keys", ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /admin/keys without the admin token: %d", code)
	}
	if code, _ := adminCall(t, http.MethodPost, srv.URL+"/admin/keys/rotate", "wrong-token-0123456789abcdef0123456789"); code != http.StatusUnauthorized {
		t.Fatalf("POST /admin/keys/rotate with a wrong token: %d", code)
	}
	code, body := adminCall(t, http.MethodGet, srv.URL+"/admin/keys", keysAdminToken)
	if code != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("empty set: %d %s", code, body)
	}
	code, body = adminCall(t, http.MethodPost, srv.URL+"/admin/keys/rotate", keysAdminToken) // first keys
	if code != http.StatusOK {
		t.Fatalf("first rotate: %d %s", code, body)
	}
	code, body = adminCall(t, http.MethodPost, srv.URL+"/admin/keys/rotate", keysAdminToken)
	if code != http.StatusOK {
		t.Fatalf("rotate: %d %s", code, body)
	}
	var rotated keyListing
	if err := json.Unmarshal(body, &rotated); err != nil {
		t.Fatal(err)
	}
	_, listed := adminCall(t, http.MethodGet, srv.URL+"/admin/keys", keysAdminToken)
	var list keyListing
	if err := json.Unmarshal(listed, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 6 || len(rotated) != 6 {
		t.Fatalf("after a rotation of two algorithms: list %d keys, rotate answered %d; want 6", len(list), len(rotated))
	}
	states := map[string]int{}
	for _, k := range list {
		states[k.State]++
		if k.Created == "" || (k.State == "retired") != (k.Retired != "" && k.RemoveAt != "") {
			t.Fatalf("key %+v: times do not fit its state", k)
		}
	}
	if states["next"] != 2 || states["current"] != 2 || states["retired"] != 2 {
		t.Fatalf("states %v, want two of each", states)
	}
	set, _ := f.SigningKeys()
	for _, k := range set {
		for name, b := range map[string][]byte{"sealed": k.Sealed, "public": k.Public} {
			for _, enc := range []string{base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), string(b)} {
				if strings.Contains(string(listed), enc[:24]) || strings.Contains(string(body), enc[:24]) {
					t.Fatalf("admin answer carries key %s's %s key bytes", k.ID, name)
				}
			}
		}
	}
}

// TestAdminKeysWithoutSigner: a server without signing keys answers 501.
func TestAdminKeysWithoutSigner(t *testing.T) {
	srv, _ := newKeysServer(t, false)
	for _, c := range []struct{ method, path string }{{http.MethodGet, "/admin/keys"}, {http.MethodPost, "/admin/keys/rotate"}} {
		if code, body := adminCall(t, c.method, srv.URL+c.path, keysAdminToken); code != http.StatusNotImplemented || !strings.Contains(string(body), "not_supported") {
			t.Errorf("%s %s: %d %s, want 501 not_supported", c.method, c.path, code, body)
		}
	}
}
