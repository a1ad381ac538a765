package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/tokend/tokend/fsm"
)

// KeyAdmin is what the admin API needs from the signing-key set (package
// keys, *keys.Manager): listing it and rotating it.
type KeyAdmin interface {
	// List returns the key set; the handlers never read its Sealed field.
	List() []fsm.SigningKey
	// Rotate turns next keys into current ones, current ones into
	// retired ones and adds fresh next keys, through Raft, and returns the
	// new set.
	Rotate(ctx context.Context) ([]fsm.SigningKey, error)
}

// keyView is one signing key as the admin API shows it: never its
// private half, sealed or not, nor its public key material (that is the
// JWKS's business).
type keyView struct {
	ID       string `json:"id"`
	Alg      string `json:"alg"`
	State    string `json:"state"`
	Created  string `json:"created"`
	Retired  string `json:"retired,omitempty"`
	RemoveAt string `json:"remove_at,omitempty"`
}

func viewKeys(keys []fsm.SigningKey) []keyView {
	at := func(ns int64) string {
		if ns == 0 {
			return ""
		}
		return time.Unix(0, ns).UTC().Format(time.RFC3339)
	}
	out := make([]keyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyView{ID: k.ID, Alg: k.Alg, State: k.State.String(),
			Created: at(k.CreatedAt), Retired: at(k.RetiredAt), RemoveAt: at(k.RemoveAt)})
	}
	return out
}

func (s *Server) keyAdmin() (KeyAdmin, error) {
	if s.cfg.Keys == nil {
		return nil, errorf(http.StatusNotImplemented, "not_supported", "this server has no signing keys")
	}
	return s.cfg.Keys, nil
}

// listKeys answers GET /admin/keys: the signing keys, next, current and
// retired, with their times.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	ka, err := s.keyAdmin()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewKeys(ka.List()))
	return nil
}

// rotateKeys answers POST /admin/keys/rotate with the set after the
// rotation; it is visible on every node when the answer comes.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	ka, err := s.keyAdmin()
	if err != nil {
		return err
	}
	if s.unready(w, r) {
		return nil
	}
	keys, err := ka.Rotate(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewKeys(keys))
	return nil
}
