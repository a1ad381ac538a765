package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
)

// jwksPath serves the JSON Web Key Set the discovery document names as
// jwks_uri: the public keys of the cluster's key set, next, current and
// retired (package keys publishes a key before it signs and keeps it until
// every token it signed has expired), so a relying party that caches it
// for max-age still finds every key it meets. An unknown kid makes
// relying parties fetch it again in any case.
const jwksPath = "/.well-known/jwks.json"

// jwksMaxAge is how long relying parties may cache the key set.
const jwksMaxAge = 300

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Signer == nil {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "OpenID Connect is not enabled on this server (it has no signing keys)"))
		return
	}
	doc, err := s.cfg.Signer.JWKS(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sum := sha256.Sum256(doc)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(jwksMaxAge))
	h.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}
