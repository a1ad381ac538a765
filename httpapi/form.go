package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// maxFormBytes bounds every form body. OAuth requests are a few hundred
// bytes; 64 KiB leaves room for long scopes and redirect URIs.
const maxFormBytes = 64 << 10

// form is a parsed application/x-www-form-urlencoded body in which every
// parameter appears at most once (RFC 6749 §3.1, §3.2).
type form url.Values

func (f form) get(k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (f form) has(k string) bool { _, ok := f[k]; return ok }

// parseForm reads a POST body, insisting on the form content type, a
// bounded size, valid UTF-8 and no repeated parameters. Query parameters
// are ignored: credentials do not belong in URLs.
func parseForm(w http.ResponseWriter, r *http.Request) (form, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errorf(http.StatusUnsupportedMediaType, "invalid_request",
			"Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		}
		return nil, invalidRequest("malformed form body")
	}
	for k, vs := range r.PostForm {
		if !utf8.ValidString(k) {
			return nil, invalidRequest("parameter names must be UTF-8")
		}
		if len(vs) > 1 {
			return nil, invalidRequest("parameter " + k + " repeated")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, invalidRequest("parameter " + k + " is not valid UTF-8")
			}
		}
	}
	return form(r.PostForm), nil
}
