package httpapi

import "net/http"

// Placeholder until the authorization code and implicit flows land.

type pages struct{}

func newPages() (*pages, error) { return &pages{}, nil }

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errorf(http.StatusNotImplemented, "unsupported_response_type", "not implemented yet"))
}

func (s *Server) authorizeLogin(w http.ResponseWriter, r *http.Request)   { s.authorize(w, r) }
func (s *Server) authorizeConsent(w http.ResponseWriter, r *http.Request) { s.authorize(w, r) }
func (s *Server) static(w http.ResponseWriter, r *http.Request)           { http.NotFound(w, r) }
