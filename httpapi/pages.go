package httpapi

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
)

// The login, consent and error pages are html/template files embedded in
// the binary, styled by one small stylesheet and free of JavaScript, so
// they work in any browser and under a strict Content-Security-Policy.

//go:embed templates
var templateFS embed.FS

type pages struct {
	login, consent, errPage *template.Template
	signedOut, signOut      *template.Template // endsession.go
	static                  map[string][]byte  // file name -> contents
}

func newPages() (*pages, error) {
	p := &pages{static: map[string][]byte{}}
	parse := func(name string) (*template.Template, error) {
		return template.ParseFS(templateFS, "templates/base.html", "templates/"+name)
	}
	var err error
	if p.login, err = parse("login.html"); err != nil {
		return nil, err
	}
	if p.consent, err = parse("consent.html"); err != nil {
		return nil, err
	}
	if p.errPage, err = parse("error.html"); err != nil {
		return nil, err
	}
	if p.signedOut, err = parse("signedout.html"); err != nil {
		return nil, err
	}
	if p.signOut, err = parse("signout.html"); err != nil {
		return nil, err
	}
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".css") {
			b, err := templateFS.ReadFile("templates/" + e.Name())
			if err != nil {
				return nil, err
			}
			p.static[e.Name()] = b
		}
	}
	return p, nil
}

// loginData fills templates/login.html.
type loginData struct {
	Action, RequestID, CSRF string
	ClientName              string
	Tenant                  string
	TenantFixed             bool
	Username                string
	Error                   string
}

// consentData fills templates/consent.html.
type consentData struct {
	Action, RequestID, CSRF string
	ClientName              string
	Username, Tenant        string
	ShowTenant              bool
	Scopes                  []string
	RedirectHost            string
	// SignOut offers a link to end the sign-in session: the page was
	// reached through single sign-on, maybe by someone else (sso.go).
	SignOut bool
}

// errorData fills templates/error.html.
type errorData struct {
	Status  int
	Title   string
	Message string
}

// render writes a page with the headers every page gets. formAction is the
// CSP form-action source list ("" leaves the directive out). Chromium
// applies form-action to the redirects that follow a form post, so the
// consent page must also allow the client's redirect URI origin.
func (s *Server) render(w http.ResponseWriter, r *http.Request, t *template.Template, status int, data any, formAction string) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base", data); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header(), formAction)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func securityHeaders(h http.Header, formAction string) {
	csp := "default-src 'none'; style-src 'self'; "
	if formAction != "" {
		csp += "form-action " + formAction + "; "
	}
	h.Set("Content-Security-Policy", csp+"frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
}

const selfOnly = "'self'"

// consentFormAction is the CSP form-action for a page whose form post may
// redirect to redirectURI.
func consentFormAction(redirectURI string) string {
	if src := cspSource(redirectURI); src != "" {
		return selfOnly + " " + src
	}
	return "" // cannot name it safely: leave form-action out
}

// errorPage shows an HTML error that does not redirect anywhere.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	s.render(w, r, s.pages.errPage, status, errorData{Status: status, Title: title, Message: msg}, selfOnly)
}

// cspSource returns the CSP source expression for the origin of a redirect
// URI ("https://app.example:8443", or "com.example.app:" for a private-use
// scheme), or "" if it cannot be expressed safely.
func cspSource(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" {
		return ""
	}
	src := u.Scheme + ":"
	if u.Host != "" {
		src = u.Scheme + "://" + u.Host
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '-', c == '+', c == ':', c == '/', c == '[', c == ']':
		default:
			return ""
		}
	}
	return src
}

// static serves the stylesheet.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["file"]
	b, ok := s.pages.static[name]
	if !ok || path.Base(name) != name {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no such file"))
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}
