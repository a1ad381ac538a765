package httpapi

import (
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/tokend/tokend/fsm"
)

// The OpenID Connect attributes of users and clients in the admin API:
// a user's standard claims (released by the profile and email scopes, in
// the ID token or from /userinfo) and a client's post-logout redirect URIs
// (endsession.go).

// userClaimsRequest is the claims part of POST /admin/users and PUT
// /admin/users/{tenant}/{username}. On PUT an absent field keeps its value
// and an empty string clears it.
type userClaimsRequest struct {
	Name              *string `json:"name"`
	Email             *string `json:"email"`
	EmailVerified     *bool   `json:"email_verified"`
	PreferredUsername *string `json:"preferred_username"`
}

// userClaimsView is how the admin API shows a user's claims.
type userClaimsView struct {
	Name              string `json:"name,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     bool   `json:"email_verified"`
	PreferredUsername string `json:"preferred_username,omitempty"`
}

func viewUserClaims(u *fsm.User) userClaimsView {
	return userClaimsView{Name: u.Name, Email: u.Email, EmailVerified: u.EmailVerified, PreferredUsername: u.PreferredUsername}
}

// maxClaimLen bounds a claim: it goes into every ID token of the user.
const maxClaimLen = 200

// apply checks the claims given and sets them on u.
func (c *userClaimsRequest) apply(u *fsm.User) error {
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{"name", c.Name, &u.Name}, {"email", c.Email, &u.Email}, {"preferred_username", c.PreferredUsername, &u.PreferredUsername}} {
		if f.v == nil {
			continue
		}
		v := strings.TrimSpace(*f.v)
		if len(v) > maxClaimLen || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n") {
			return invalidRequest(f.name + " must be at most 200 bytes of text on one line")
		}
		*f.dst = v
	}
	if c.Email != nil && u.Email != "" {
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email || a.Name != "" {
			return invalidRequest("email is not an e-mail address (name@example.com)")
		}
	}
	if c.EmailVerified != nil {
		u.EmailVerified = *c.EmailVerified
	}
	if u.Email == "" {
		u.EmailVerified = false
	}
	return nil
}

// checkPostLogoutRedirectURIs applies redirect_uris' rules (redirect.go)
// to post_logout_redirect_uris.
func checkPostLogoutRedirectURIs(uris []string) error {
	for _, u := range uris {
		if err := checkRedirectURI(u); err != nil {
			return err
		}
	}
	return nil
}
