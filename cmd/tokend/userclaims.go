package main

import (
	"errors"
	"flag"
	"net/http"
	"net/url"
	"strconv"
)

// OpenID Connect attributes in the admin subcommands: a user's standard
// claims (tokend user create|update) and a client's post-logout redirect
// URIs (tokend client create|update). A claim flag that is not given is
// not sent, so tokend user update changes only what it names.

// claimFlags are the user claim flags, by admin API field.
var claimFlags = map[string]string{
	"name":               "name",
	"email":              "email",
	"email-verified":     "email_verified",
	"preferred-username": "preferred_username",
}

// registerClaimFlags adds the claim flags; --name is shared with client.
func (o *adminOpts) registerClaimFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.email, "email", "", "user: e-mail address (email claim; \"\" clears it)")
	fs.BoolVar(&o.emailVerified, "email-verified", false, "user: the e-mail address is verified (email_verified claim)")
	fs.StringVar(&o.preferredUsername, "preferred-username", "", "user: preferred_username claim (default: the username)")
	fs.Var(&o.postLogout, "post-logout-redirect-uri", "client: where OpenID logout may return the browser (repeatable, exact match)")
}

// addUserClaims puts the claim flags given on the command line into body.
func (o *adminOpts) addUserClaims(fs *flag.FlagSet, body map[string]any) {
	fs.Visit(func(f *flag.Flag) {
		field, ok := claimFlags[f.Name]
		if !ok {
			return
		}
		if f.Name == "email-verified" {
			v, _ := strconv.ParseBool(f.Value.String())
			body[field] = v
			return
		}
		body[field] = f.Value.String()
	})
}

// userRequest maps tokend user VERB to its admin API call; target returns
// the user's admin path from the command's one argument.
func (o *adminOpts) userRequest(verb string, fs *flag.FlagSet, target func() (string, error)) (method, path string, body any, err error) {
	needPassword := errors.New("--password (or TOKEND_PASSWORD) is required")
	if verb == "create" {
		if o.password == "" {
			return "", "", nil, needPassword
		}
		b := map[string]any{"tenant": o.tenant, "username": o.username, "password": o.password}
		o.addUserClaims(fs, b)
		return http.MethodPost, "/admin/users", b, nil
	}
	p, err := target()
	if err != nil {
		return "", "", nil, err
	}
	switch verb {
	case "delete":
		return http.MethodDelete, p, nil, nil
	case "forget-consent": // the next OpenID sign-in to --client asks again
		if o.client == "" {
			return "", "", nil, errors.New("--client ID is required")
		}
		return http.MethodDelete, p + "/consents/" + url.PathEscape(o.client), nil, nil
	case "update": // claims, and a password when given
		b := map[string]any{}
		if o.password != "" {
			b["password"] = o.password
		}
		o.addUserClaims(fs, b)
		return http.MethodPut, p, b, nil
	}
	if o.password == "" {
		return "", "", nil, needPassword
	}
	return http.MethodPut, p, map[string]string{"password": o.password}, nil
}
