package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// refreshWith posts a refresh_token grant as c and returns the reply.
func (n *node) refreshWith(t *testing.T, c client, rt string) reply {
	t.Helper()
	return n.postForm(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, []string{c.ID, c.Secret})
}

// wantInvalidGrant requires a 400 invalid_grant answer.
func wantInvalidGrant(t *testing.T, what string, r reply) {
	t.Helper()
	if r.Status != http.StatusBadRequest || r.errCode(t) != "invalid_grant" {
		t.Fatalf("%s: %d %s, want 400 invalid_grant", what, r.Status, r.Body)
	}
}

// TestRefreshGraceReplayByThiefRevokesGrant reproduces the takeover the
// refresh grace window used to allow, over real HTTP: the client refreshes
// r0 to r1, a thief who copied r0 replays it within the window and gets a
// fresh pair, and the client then presents r1. Two parties have used one
// refresh chain, so the whole grant is revoked: the thief's access and
// refresh tokens stop working, and so do the client's.
func TestRefreshGraceReplayByThiefRevokesGrant(t *testing.T) {
	t.Parallel()
	// A long window, so a slow test machine cannot push the replay out of it.
	n := startNode(t, t.TempDir(), nodeOpts{RefreshGrace: time.Minute})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}, "scopes": []string{"read"}})
	n.createUser(t, "", "alice", "pw")

	first := n.passwordGrant(t, web, "", "alice", "pw")
	mine := n.issue(t, web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
	stolen := n.issue(t, web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
	if stolen.RefreshToken == mine.RefreshToken || stolen.AccessToken == mine.AccessToken {
		t.Fatal("the replay was handed the client's tokens")
	}
	if !n.valid(t, stolen.AccessToken) || !n.active(t, web, stolen.RefreshToken) {
		t.Fatal("the thief's pair from the grace replay is not live")
	}

	// The client comes back with r1.
	wantInvalidGrant(t, "client presenting r1", n.refreshWith(t, web, mine.RefreshToken))

	for name, tok := range map[string]string{"thief's access token": stolen.AccessToken, "client's access token": mine.AccessToken, "first access token": first.AccessToken} {
		if r := n.validate(t, tok, ""); r.Status != http.StatusUnauthorized {
			t.Errorf("%s after reuse: /validate %d, want 401", name, r.Status)
		}
	}
	if n.active(t, web, stolen.RefreshToken) || n.active(t, web, stolen.AccessToken) {
		t.Error("the thief's tokens introspect as active after reuse")
	}
	wantInvalidGrant(t, "thief refreshing after reuse", n.refreshWith(t, web, stolen.RefreshToken))
	wantInvalidGrant(t, "client refreshing again", n.refreshWith(t, web, mine.RefreshToken))
}
