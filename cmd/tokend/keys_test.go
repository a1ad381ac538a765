package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Signing keys (package keys) across real tokend processes: the key set is
// replicated, so a rotation through one node's admin API is the signing key
// of every node when it returns.

// listedKey is one entry of tokend keys list / rotate.
type listedKey struct {
	ID, Alg, State, Created, Retired string
	RemoveAt                         string `json:"remove_at"`
}

// keysCLI runs tokend keys <verb> against p and returns the set it prints
// and everything it wrote.
func keysCLI(t *testing.T, p *proc, verb string) ([]listedKey, string) {
	t.Helper()
	var out strings.Builder
	args := []string{"keys", verb, "--addr", p.url(), "--admin-token", testAdminToken}
	if err := run(withTimeout(t), args, &out, &out); err != nil {
		t.Fatalf("tokend keys %s on %s: %v\n%s", verb, p.id, err, out.String())
	}
	var set []listedKey
	if err := json.Unmarshal([]byte(out.String()), &set); err != nil {
		t.Fatalf("tokend keys %s: not a key list: %s", verb, out.String())
	}
	return set, out.String()
}

// stateOf returns the IDs of alg's keys in state.
func stateOf(set []listedKey, alg, state string) []string {
	var ids []string
	for _, k := range set {
		if k.Alg == alg && k.State == state {
			ids = append(ids, k.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// keysJWTClient registers a client_credentials client whose access tokens
// are JWTs signed with the current key.
func keysJWTClient(t *testing.T, p *proc) (id, secret string) {
	t.Helper()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	eventually(t, "create JWT client", func() error {
		code, body, _, err := do(http.MethodPost, p.url()+"/admin/clients", "application/json",
			`{"name":"signing keys test","grant_types":["client_credentials"],"scopes":["read"],"access_token_format":"jwt"}`, adminAuth)
		if err != nil {
			return err
		}
		if code != http.StatusCreated {
			return fmt.Errorf("status %d: %s", code, body)
		}
		return json.Unmarshal(body, &out)
	})
	return out.ClientID, out.ClientSecret
}

// issueDefinite issues a token on p, retrying only while p answers 503
// (no read lease right now).
func issueDefinite(t *testing.T, p *proc, id, secret string) string {
	t.Helper()
	var tok string
	eventually(t, "token from "+p.id, func() error {
		var code int
		var err error
		tok, code, err = issue(p, id, secret)
		if err != nil && code != http.StatusServiceUnavailable && code != 0 {
			t.Fatalf("issue on %s: %v", p.id, err)
		}
		return err
	})
	return tok
}

// jwsHeader decodes a compact JWS's header.
func jwsHeader(t *testing.T, tok string) (kid, alg, typ string) {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	var v struct{ Kid, Alg, Typ string }
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		t.Fatalf("token %.20s… is not a JWS: %v", tok, err)
	}
	return v.Kid, v.Alg, v.Typ
}

// jwksKIDs returns the key IDs of the JWKS p serves.
func jwksKIDs(t *testing.T, p *proc) []string {
	t.Helper()
	var ids []string
	eventually(t, "JWKS of "+p.id, func() error {
		code, body, _, err := do(http.MethodGet, p.url()+"/.well-known/jwks.json", "", "", nil)
		if err != nil {
			return err
		}
		if code == http.StatusServiceUnavailable {
			return fmt.Errorf("503")
		}
		if code != http.StatusOK {
			t.Fatalf("JWKS of %s: %d %s", p.id, code, body)
		}
		var set struct {
			Keys []struct{ Kid, Alg, Use string }
		}
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatalf("JWKS of %s: %v", p.id, err)
		}
		ids = ids[:0]
		for _, k := range set.Keys {
			ids = append(ids, k.Kid)
		}
		return nil
	})
	slices.Sort(ids)
	return ids
}

func ids(set []listedKey) []string {
	var out []string
	for _, k := range set {
		out = append(out, k.ID)
	}
	slices.Sort(out)
	return out
}

// TestKeysRotateThreeNodes: a key rotated through one node's admin API is
// the signing key of every node when the call returns (the kid of a fresh
// signature, the JWKS and the key list of each node), and two rotations
// through two nodes at once both apply.
func TestKeysRotateThreeNodes(t *testing.T) {
	c := newTestCluster(t, 3)
	id, secret := keysJWTClient(t, c.procs[0])
	first := issueDefinite(t, c.procs[0], id, secret) // makes the keys
	k0, alg, typ := jwsHeader(t, first)
	if alg != "ES256" || typ != "at+jwt" {
		t.Fatalf("first JWT: alg %s typ %s, want ES256 at+jwt", alg, typ)
	}
	for _, p := range c.procs {
		if kid, _, _ := jwsHeader(t, issueDefinite(t, p, id, secret)); kid != k0 {
			t.Fatalf("%s signs with %s, %s with %s", p.id, kid, c.procs[0].id, k0)
		}
	}
	before, _ := keysCLI(t, c.procs[1], "list")
	if cur := stateOf(before, "ES256", "current"); len(cur) != 1 || cur[0] != k0 {
		t.Fatalf("keys list: current ES256 %v, want [%s]", cur, k0)
	}
	n0 := stateOf(before, "ES256", "next")
	if len(n0) != 1 || len(stateOf(before, "RS256", "current")) != 1 || len(before) != 4 {
		t.Fatalf("keys list before rotation: %+v", before)
	}

	after, _ := keysCLI(t, c.procs[1], "rotate")
	if cur := stateOf(after, "ES256", "current"); len(cur) != 1 || cur[0] != n0[0] {
		t.Fatalf("after rotation: current ES256 %v, want the old next %s", cur, n0[0])
	}
	if ret := stateOf(after, "ES256", "retired"); len(ret) != 1 || ret[0] != k0 {
		t.Fatalf("after rotation: retired ES256 %v, want [%s]", ret, k0)
	}
	for _, p := range c.procs {
		if kid, _, _ := jwsHeader(t, issueDefinite(t, p, id, secret)); kid != n0[0] {
			t.Fatalf("%s signs with %s after the rotation through %s returned, want %s", p.id, kid, c.procs[1].id, n0[0])
		}
		if got := jwksKIDs(t, p); !slices.Equal(got, ids(after)) {
			t.Fatalf("JWKS of %s: %v, want the rotated set %v", p.id, got, ids(after))
		}
		if got, _ := keysCLI(t, p, "list"); !slices.Equal(ids(got), ids(after)) {
			t.Fatalf("keys list of %s: %v, want %v", p.id, ids(got), ids(after))
		}
	}

	// Two rotations at once through two nodes: compare and swap on the
	// set, so both apply, one after the other.
	var wg sync.WaitGroup
	for _, p := range []*proc{c.procs[0], c.procs[2]} {
		wg.Add(1)
		go func() { defer wg.Done(); keysCLI(t, p, "rotate") }()
	}
	wg.Wait()
	final, _ := keysCLI(t, c.procs[1], "list")
	if ret := stateOf(final, "ES256", "retired"); len(ret) != 3 || len(stateOf(final, "ES256", "current")) != 1 || len(stateOf(final, "ES256", "next")) != 1 {
		t.Fatalf("after two concurrent rotations: %+v, want 3 retired, 1 current, 1 next ES256 keys", final)
	}
	cur := stateOf(final, "ES256", "current")[0]
	for _, p := range c.procs {
		if kid, _, _ := jwsHeader(t, issueDefinite(t, p, id, secret)); kid != cur {
			t.Fatalf("%s signs with %s after the concurrent rotations, want %s", p.id, kid, cur)
		}
	}
	// The first token, signed with a retired key, is still a valid token.
	if code := validateEventually(t, c.procs[2], first); code != http.StatusOK {
		t.Fatalf("token signed before the rotations: /validate %d", code)
	}
}

// TestSigningKeyFileWithoutClusterKey: a node without a cluster key seals
// its signing keys under signing-keys.key in its data directory (32 bytes,
// mode 0600), signs with the same key after a restart, and refuses to
// start when others may read that file.
func TestSigningKeyFileWithoutClusterKey(t *testing.T) {
	p := startNode(t, "solo", "--admin-token", testAdminToken)
	c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}
	c.waitReady(p)
	id, secret := keysJWTClient(t, p)
	kid, _, _ := jwsHeader(t, issueDefinite(t, p, id, secret))

	path := filepath.Join(p.dir, "signing-keys.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: mode %04o, %d bytes; want 0600 and 32", fi.Mode().Perm(), fi.Size())
	}
	p.terminate(t)
	p.start(t)
	c.waitReady(p)
	if again, _, _ := jwsHeader(t, issueDefinite(t, p, id, secret)); again != kid {
		t.Fatalf("after a restart the node signs with %s, before with %s", again, kid)
	}

	p.terminate(t)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	p.start(t)
	select {
	case <-p.exited:
	case <-time.After(deadline):
		t.Fatal("node started with a world-readable signing key file")
	}
	if out := p.out.String(); !strings.Contains(out, "signing-keys.key has mode 0644") {
		t.Fatalf("refusal does not name the file and its mode:\n%s", tail(p.out, 10))
	}
}
