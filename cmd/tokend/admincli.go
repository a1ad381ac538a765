package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
)

// Operator subcommands are thin clients of a running node's admin API, so
// they work against any node of a cluster and need no access to its data.

func adminCommand(ctx context.Context, group string, args []string, stdout, stderr io.Writer) error {
	verb := ""
	if group != "revoke" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return fmt.Errorf("usage: tokend %s <%s>", group, strings.Join(verbs[group], "|"))
		}
		verb, args = args[0], args[1:]
	}
	fs := newFlagSet("tokend "+strings.TrimSpace(group+" "+verb), stderr)
	addr := fs.String("addr", "http://127.0.0.1:8080", "URL of a tokend node's admin surface: its --admin-addr when set, else its --http-addr")
	token := fs.String("admin-token", "", "admin bearer token"+argvWarning("admin-token-file"))
	tokenFile := fs.String("admin-token-file", "", "file holding the admin bearer token")
	o := &adminOpts{}
	fs.StringVar(&o.name, "name", "", "client: application name; user: full name (name claim)")
	fs.Var(&o.redirects, "redirect-uri", "client: callback URL (repeatable)")
	fs.Var(&o.grants, "grant", "client: grant type (repeatable): authorization_code, implicit, password, client_credentials, refresh_token")
	fs.Var(&o.scopes, "scope", "client: scope (repeatable)")
	fs.BoolVar(&o.public, "public", false, "client: public client (no secret, PKCE required)")
	fs.BoolVar(&o.introspect, "introspect", false, "client: a resource server, which may introspect every client's tokens (others only their own); client update without it clears it")
	fs.StringVar(&o.tokenFormat, "access-token-format", "opaque", "client: opaque, or jwt for RFC 9068 signed access tokens; client update without it sets opaque")
	fs.StringVar(&o.tenant, "tenant", "default", "user: tenant")
	fs.StringVar(&o.username, "username", "", "user: user name")
	fs.StringVar(&o.password, "password", "", "user: password (or TOKEND_PASSWORD)")
	fs.StringVar(&o.client, "client", "", "revoke: every grant of this client id; user forget-consent: the client")
	fs.StringVar(&o.user, "user", "", "revoke: every grant of TENANT/USERNAME")
	o.registerClaimFlags(fs) // userclaims.go
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if *token != "" && *tokenFile != "" {
		return errors.New("give one of --admin-token and --admin-token-file, not both")
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
		*token = strings.TrimRightFunc(string(b), unicode.IsSpace)
	}
	api := &adminClient{base: strings.TrimRight(*addr, "/"), token: *token, http: &http.Client{Timeout: 30 * time.Second}}
	method, path, body, err := o.request(group, verb, fs)
	if err != nil {
		return err
	}
	// Every call, /cluster/status included, needs the token.
	if api.token == "" {
		return errors.New("--admin-token-file or --admin-token (or TOKEND_ADMIN_TOKEN[_FILE]) is required")
	}
	var out json.RawMessage
	if err := api.do(ctx, method, path, body, &out); err != nil {
		return err
	}
	return printJSON(stdout, out)
}

var verbs = map[string][]string{
	"client":  {"create", "list", "get", "update", "delete", "rotate-secret"},
	"user":    {"create", "update", "delete", "set-password", "forget-consent"},
	"cluster": {"status", "leave"},
	"keys":    {"list", "rotate"},
}

type adminOpts struct {
	name, tenant, username, password, client, user string
	redirects, grants, scopes                      listFlag
	public, introspect                             bool
	tokenFormat                                    string
	// OpenID Connect (userclaims.go).
	email, preferredUsername string
	emailVerified            bool
	postLogout               listFlag
}

// request maps a subcommand to its admin API call.
func (o *adminOpts) request(group, verb string, fs *flag.FlagSet) (method, path string, body any, err error) {
	arg := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("tokend %s %s takes exactly one argument", group, verb)
		}
		return fs.Arg(0), nil
	}
	clientBody := func() map[string]any {
		return map[string]any{"name": o.name, "redirect_uris": o.redirects, "grant_types": o.grants, "scopes": o.scopes, "public": o.public, "introspect": o.introspect,
			"access_token_format": o.tokenFormat, "post_logout_redirect_uris": o.postLogout}
	}
	userPath := func(s string) (string, error) {
		tenant, name, ok := strings.Cut(s, "/")
		if !ok || tenant == "" || name == "" {
			return "", fmt.Errorf("want TENANT/USERNAME, got %q", s)
		}
		return "/admin/users/" + url.PathEscape(tenant) + "/" + url.PathEscape(name), nil
	}
	switch group + " " + verb {
	case "client create":
		return http.MethodPost, "/admin/clients", clientBody(), nil
	case "client list":
		return http.MethodGet, "/admin/clients", nil, nil
	case "client get", "client update", "client delete", "client rotate-secret":
		id, err := arg()
		if err != nil {
			return "", "", nil, err
		}
		p := "/admin/clients/" + url.PathEscape(id)
		switch verb {
		case "get":
			return http.MethodGet, p, nil, nil
		case "update":
			b := clientBody()
			delete(b, "public")
			return http.MethodPut, p, b, nil
		case "delete":
			return http.MethodDelete, p, nil, nil
		}
		return http.MethodPost, p + "/secret", nil, nil
	case "user create", "user delete", "user set-password", "user update", "user forget-consent":
		return o.userRequest(verb, fs, func() (string, error) { // userclaims.go
			a, err := arg()
			if err != nil {
				return "", err
			}
			return userPath(a)
		})
	case "revoke ":
		switch {
		case o.client != "" && o.user == "":
			return http.MethodPost, "/admin/revoke", map[string]string{"client_id": o.client}, nil
		case o.user != "" && o.client == "":
			tenant, name, ok := strings.Cut(o.user, "/")
			if !ok {
				return "", "", nil, fmt.Errorf("--user wants TENANT/USERNAME, got %q", o.user)
			}
			return http.MethodPost, "/admin/revoke", map[string]string{"tenant": tenant, "username": name}, nil
		}
		return "", "", nil, errors.New("tokend revoke needs exactly one of --client ID or --user TENANT/USERNAME")
	case "cluster status":
		return http.MethodGet, "/cluster/status", nil, nil
	case "cluster leave":
		return http.MethodPost, "/admin/cluster/leave", nil, nil
	case "keys list":
		return http.MethodGet, "/admin/keys", nil, nil
	case "keys rotate":
		return http.MethodPost, "/admin/keys/rotate", nil, nil
	}
	return "", "", nil, fmt.Errorf("unknown command: tokend %s %s (want one of %s)", group, verb, strings.Join(verbs[group], ", "))
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err = fmt.Fprintln(w, string(raw))
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
