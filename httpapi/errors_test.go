package httpapi

import (
	"errors"
	"testing"

	"github.com/tokend/tokend/fsm"
)

// TestOutcomeError pins the one mapping from fsm outcomes to HTTP errors:
// the statuses, codes and descriptions the handlers answered before it
// existed.
func TestOutcomeError(t *testing.T) {
	for _, tc := range []struct {
		about   subject
		outcome fsm.Outcome
		status  int // 0: no error
		code    string
		desc    string
	}{
		{aClient, fsm.OK, 0, "", ""},
		{aClient, fsm.Exists, 409, "already_exists", "client already exists"},
		{aClient, fsm.NotFound, 404, "not_found", "no such client"},
		{aUser, fsm.Exists, 409, "already_exists", "user already exists"},
		{aUser, fsm.NotFound, 404, "not_found", "no such user"},
		{newGrant, fsm.OK, 0, "", ""},
		{newGrant, fsm.NotFound, 400, "invalid_grant", "grant could not be issued: not found"},
		{aRefresh, fsm.Mismatch, 400, "invalid_scope", "scope exceeds the original grant"},
		{aRefresh, fsm.Reused, 400, "invalid_grant", "refresh token was already used; the grant has been revoked"},
		{aRefresh, fsm.NotFound, 400, "invalid_grant", "refresh token is invalid, expired or revoked"},
		{aRefresh, fsm.WrongClient, 400, "invalid_grant", "refresh token is invalid, expired or revoked"},
		{aCode, fsm.Reused, 400, "invalid_grant", "authorization code was already used; tokens issued with it are revoked"},
		{aCode, fsm.Mismatch, 400, "invalid_grant", "redirect_uri or code_verifier does not match the authorization request"},
		{aCode, fsm.WrongClient, 400, "invalid_grant", "authorization code is invalid or expired"},
		{aRevocation, fsm.NotFound, 0, "", ""},
		{aRevocation, fsm.WrongClient, 0, "", ""},
	} {
		err := outcomeError(fsm.Result{Outcome: tc.outcome}, tc.about)
		if tc.status == 0 {
			if err != nil {
				t.Errorf("subject %d, outcome %d: %v, want nil", tc.about, tc.outcome, err)
			}
			continue
		}
		var oe *oauthError
		if !errors.As(err, &oe) || oe.Status != tc.status || oe.Code != tc.code || oe.Description != tc.desc {
			t.Errorf("subject %d, outcome %d: %#v, want %d %s %q", tc.about, tc.outcome, err, tc.status, tc.code, tc.desc)
		}
	}
}
