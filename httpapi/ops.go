package httpapi

import "net/http"

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is 200 only while this node can answer validations (a leader and
// a read lease), so load balancers route around it otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.unready(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Status())
}

// adminLeave removes this node from the cluster; the process keeps running
// until it is stopped.
func (s *Server) adminLeave(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Leave == nil {
		return errorf(http.StatusNotImplemented, "not_supported", "this node cannot leave")
	}
	if err := s.cfg.Leave(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"left": true})
	return nil
}
