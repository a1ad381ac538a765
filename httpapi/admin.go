package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/tokend/tokend/fsm"
)

// The admin API manages clients and users and revokes in bulk. It is off
// unless an admin token is configured, and every call needs it as a bearer
// token (adminauth.go).

const maxJSONBytes = 64 << 10

// decodeJSON reads one JSON object into v, refusing other content types,
// unknown fields, trailing data and oversize bodies.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		}
		return invalidRequest("could not read body")
	}
	if !utf8.Valid(body) {
		return invalidRequest("body is not valid UTF-8")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidRequest("malformed JSON: " + err.Error())
	}
	if dec.More() {
		return invalidRequest("trailing data after JSON object")
	}
	return nil
}

// clientRequest is the body of POST and PUT /admin/clients (RFC 7591
// names).
type clientRequest struct {
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirect_uris"`
	GrantTypes   []string `json:"grant_types"`
	Scopes       []string `json:"scopes"`
	Public       *bool    `json:"public"`
	// Introspect registers a resource server, which may introspect every
	// client's tokens (introspect.go).
	Introspect bool `json:"introspect"`
	// PostLogoutRedirectURIs are where RP-initiated logout may return
	// the browser (endsession.go).
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	// AccessTokenFormat is "opaque" (or absent) or "jwt" (jwtaccess.go).
	AccessTokenFormat string `json:"access_token_format"`
}

type clientView struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirect_uris"`
	GrantTypes   []string `json:"grant_types"`
	Scopes       []string `json:"scopes"`
	Public       bool     `json:"public"`
	Introspect   bool     `json:"introspect"`
	CreatedAt    string   `json:"created_at"`
	UpdatedAt    string   `json:"updated_at,omitempty"`

	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`

	// AccessTokenFormat is "opaque" or "jwt" (jwtaccess.go).
	AccessTokenFormat string `json:"access_token_format"`
}

func viewClient(c *fsm.Client, secret string) clientView {
	v := clientView{
		ClientID: c.ID, ClientSecret: secret, Name: c.Name, Public: c.Public, Introspect: c.Introspect,
		RedirectURIs: nonNil(c.RedirectURIs), GrantTypes: nonNil(c.GrantTypes), Scopes: nonNil(c.Scopes),
		CreatedAt:              time.Unix(0, c.CreatedAt).UTC().Format(time.RFC3339),
		PostLogoutRedirectURIs: nonNil(c.PostLogoutRedirectURIs),
	}
	v.AccessTokenFormat = viewAccessTokenFormat(c)
	if c.UpdatedAt != 0 {
		v.UpdatedAt = time.Unix(0, c.UpdatedAt).UTC().Format(time.RFC3339)
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var knownGrants = []string{"authorization_code", "implicit", "password", "client_credentials", "refresh_token"}

// validate checks a registration and fills defaults: confidential clients
// get every grant but implicit, public ones the code flow with refresh;
// scopes default to "read".
func (req *clientRequest) validate() (fsm.Client, error) {
	c := fsm.Client{Name: strings.TrimSpace(req.Name)}
	if req.Public != nil {
		c.Public = *req.Public
	}
	c.Introspect = req.Introspect
	if c.Public && c.Introspect {
		return c, invalidRequest("public clients cannot introspect")
	}
	if c.Name == "" || len(c.Name) > 200 {
		return c, invalidRequest("name is required (at most 200 characters)")
	}
	c.GrantTypes = req.GrantTypes
	if len(c.GrantTypes) == 0 {
		if c.Public {
			c.GrantTypes = []string{"authorization_code", "refresh_token"}
		} else {
			c.GrantTypes = []string{"authorization_code", "password", "client_credentials", "refresh_token"}
		}
	}
	for _, g := range c.GrantTypes {
		if !contains(knownGrants, g) {
			return c, invalidRequest("unknown grant type " + g)
		}
		if c.Public && g == "client_credentials" {
			return c, invalidRequest("public clients cannot use client_credentials")
		}
	}
	c.Scopes = req.Scopes
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"read"}
	}
	for _, sc := range c.Scopes {
		if sc == "" || strings.ContainsRune(sc, ' ') || !validScopeSyntax(sc) {
			return c, invalidRequest("invalid scope " + sc)
		}
	}
	for _, u := range req.RedirectURIs {
		if err := checkRedirectURI(u); err != nil { // redirect.go
			return c, err
		}
	}
	c.RedirectURIs = req.RedirectURIs
	if err := checkPostLogoutRedirectURIs(req.PostLogoutRedirectURIs); err != nil { // adminclaims.go
		return c, err
	}
	c.PostLogoutRedirectURIs = req.PostLogoutRedirectURIs
	if (contains(c.GrantTypes, "authorization_code") || contains(c.GrantTypes, "implicit")) && len(c.RedirectURIs) == 0 {
		return c, invalidRequest("redirect_uris are required for the authorization_code and implicit grants")
	}
	return c, nil
}

func (s *Server) createClient(w http.ResponseWriter, r *http.Request) error {
	var req clientRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	c, err := req.validate()
	if err != nil {
		return err
	}
	if c.AccessTokenFormat, err = s.checkAccessTokenFormat(req.AccessTokenFormat); err != nil {
		return err
	}
	c.ID = newClientID()
	c.CreatedAt = s.now().UnixNano()
	var secret string
	if !c.Public {
		secret = newSecret(prefixSecret)
		c.SecretHash = fsm.HashOf(secret)
	}
	if err := s.applyAbout(r, &fsm.PutClient{Client: c, Create: true}, aClient); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/admin/clients/"+c.ID)
	writeJSON(w, http.StatusCreated, viewClient(&c, secret))
	return nil
}

// applyAbout replicates cmd and turns a refusal into its HTTP error
// (outcomeError).
func (s *Server) applyAbout(r *http.Request, cmd fsm.Command, about subject) error {
	_, err := s.applyResult(r, cmd, about)
	return err
}

// applyResult is applyAbout for handlers that answer with the result.
func (s *Server) applyResult(r *http.Request, cmd fsm.Command, about subject) (fsm.Result, error) {
	res, err := s.apply(r.Context(), cmd)
	if err != nil {
		return res, err
	}
	return res, outcomeError(res, about)
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request) error {
	out := []clientView{}
	for _, c := range s.fsm.Clients() {
		out = append(out, viewClient(c, ""))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) lookupClient(r *http.Request) (*fsm.Client, error) {
	c, ok := s.fsm.Client(mux.Vars(r)["id"])
	if !ok {
		return nil, outcomeError(fsm.Result{Outcome: fsm.NotFound}, aClient)
	}
	return c, nil
}

func (s *Server) getClient(w http.ResponseWriter, r *http.Request) error {
	c, err := s.lookupClient(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewClient(c, ""))
	return nil
}

// updateClient replaces the registration; the secret and the client type
// stay as they are.
func (s *Server) updateClient(w http.ResponseWriter, r *http.Request) error {
	old, err := s.lookupClient(r)
	if err != nil {
		return err
	}
	var req clientRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Public != nil && *req.Public != old.Public {
		return invalidRequest("a client cannot change between public and confidential")
	}
	req.Public = &old.Public
	c, err := req.validate()
	if err != nil {
		return err
	}
	if c.AccessTokenFormat, err = s.checkAccessTokenFormat(req.AccessTokenFormat); err != nil {
		return err
	}
	c.ID, c.CreatedAt, c.UpdatedAt = old.ID, old.CreatedAt, s.now().UnixNano()
	if err := s.applyAbout(r, &fsm.PutClient{Client: c, KeepSecret: true}, aClient); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewClient(&c, ""))
	return nil
}

func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) error {
	res, err := s.applyResult(r, &fsm.DeleteClient{ClientID: mux.Vars(r)["id"]}, aClient)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "revoked_grants": res.Count})
	return nil
}

func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	old, err := s.lookupClient(r)
	if err != nil {
		return err
	}
	if old.Public {
		return invalidRequest("public clients have no secret")
	}
	c := *old
	secret := newSecret(prefixSecret)
	c.SecretHash = fsm.HashOf(secret)
	c.UpdatedAt = s.now().UnixNano()
	if err := s.applyAbout(r, &fsm.PutClient{Client: c}, aClient); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, viewClient(&c, secret))
	return nil
}

type userRequest struct {
	Tenant   string `json:"tenant"`
	Username string `json:"username"`
	Password string `json:"password"`
	userClaimsRequest
}

type userView struct {
	Tenant    string `json:"tenant"`
	Username  string `json:"username"`
	CreatedAt string `json:"created_at"`
	userClaimsView
}

func viewUser(u *fsm.User) userView {
	return userView{Tenant: u.Tenant, Username: u.Username, CreatedAt: time.Unix(0, u.CreatedAt).UTC().Format(time.RFC3339),
		userClaimsView: viewUserClaims(u)}
}

func validName(s string) bool {
	return s != "" && len(s) <= 200 && !strings.ContainsAny(s, "/\x00") && strings.TrimSpace(s) == s
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var req userRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Tenant == "" {
		req.Tenant = defaultTenant
	}
	if !validName(req.Tenant) || !validName(req.Username) {
		return invalidRequest("tenant and username must be 1-200 characters without '/'")
	}
	if err := checkNewPassword(req.Password); err != nil {
		return err
	}
	u := fsm.User{Tenant: req.Tenant, Username: req.Username, CreatedAt: s.now().UnixNano()}
	if err := req.userClaimsRequest.apply(&u); err != nil {
		return err
	}
	u.PasswordHash = HashPassword(req.Password)
	if err := s.applyAbout(r, &fsm.PutUser{User: u, Create: true}, aUser); err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/users/"+url.PathEscape(u.Tenant)+"/"+url.PathEscape(u.Username))
	writeJSON(w, http.StatusCreated, viewUser(&u))
	return nil
}

func checkNewPassword(p string) error {
	if len(p) < 1 || len(p) > 1024 {
		return invalidRequest("password must be 1-1024 bytes")
	}
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	out := []userView{}
	for _, u := range s.fsm.Users() {
		out = append(out, viewUser(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// updateUser sets a new password, claims (adminclaims.go), or both.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	var req struct {
		Password *string `json:"password"`
		userClaimsRequest
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Password != nil {
		if err := checkNewPassword(*req.Password); err != nil {
			return err
		}
	}
	old, ok := s.fsm.User(vars["tenant"], vars["username"])
	if !ok {
		return outcomeError(fsm.Result{Outcome: fsm.NotFound}, aUser)
	}
	u := *old
	if err := req.userClaimsRequest.apply(&u); err != nil {
		return err
	}
	if req.Password != nil {
		u.PasswordHash = HashPassword(*req.Password)
	}
	if err := s.applyAbout(r, &fsm.PutUser{User: u}, aUser); err != nil {
		return err
	}
	if req.Password != nil { // a new password signs the user out (sso.go)
		if _, err := s.endUserSessions(r.Context(), u.Tenant, u.Username); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, viewUser(&u))
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	res, err := s.applyResult(r, &fsm.DeleteUser{Tenant: vars["tenant"], Username: vars["username"]}, aUser)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "revoked_grants": res.Count})
	return nil
}

// adminRevoke revokes every grant of a client or of a user.
func (s *Server) adminRevoke(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		ClientID string `json:"client_id"`
		Tenant   string `json:"tenant"`
		Username string `json:"username"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	var cmd fsm.Command
	switch {
	case req.ClientID != "" && req.Username == "" && req.Tenant == "":
		cmd = &fsm.RevokeClient{ClientID: req.ClientID}
	case req.ClientID == "" && req.Username != "":
		if req.Tenant == "" {
			req.Tenant = defaultTenant
		}
		cmd = &fsm.RevokeSubject{Tenant: req.Tenant, Username: req.Username}
	default:
		return invalidRequest(`give either {"client_id"} or {"tenant","username"}`)
	}
	res, err := s.applyResult(r, cmd, aRevocation)
	if err != nil {
		return err
	}
	out := map[string]any{"revoked_grants": res.Count}
	if req.Username != "" { // and the user's sign-in sessions (sso.go)
		n, err := s.endUserSessions(r.Context(), req.Tenant, req.Username)
		if err != nil {
			return err
		}
		out["ended_sessions"] = n
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
