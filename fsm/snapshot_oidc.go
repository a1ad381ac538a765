package fsm

import (
	"errors"
	"fmt"
)

// The OpenID Connect sections of a snapshot (version 4 on; the layout is
// in snapshot.go). Restore refuses an image whose records could not have
// come from Apply: a consent or session of a user or client that does not
// exist, a duplicate, a scope that is not in the form RememberConsent
// stores, a zero session id, or a key set ValidateSigningKeys refuses or
// that has keys at generation 0.

// writeOIDC writes the consents, sessions and keys sections.
func (s *Snapshot) writeOIDC(sw *snapshotWriter) error {
	e := &sw.e
	n := 0
	for _, m := range s.consents {
		n += len(m)
	}
	e.uvarint(uint64(n))
	for k, m := range s.consents {
		for client, scope := range m {
			e.string(k.tenant)
			e.string(k.username)
			e.string(client)
			e.string(scope)
			if err := sw.flush(); err != nil {
				return err
			}
		}
	}
	e.uvarint(uint64(len(s.sessions)))
	for sid, ss := range s.sessions {
		e.hash(sid)
		e.string(ss.Tenant)
		e.string(ss.Username)
		e.varint(ss.AuthTime)
		e.varint(ss.ExpiresAt)
		if err := sw.flush(); err != nil {
			return err
		}
	}
	e.uvarint(s.keyGen)
	e.uvarint(uint64(len(s.keys)))
	for i := range s.keys {
		encodeSigningKey(e, &s.keys[i])
	}
	return sw.flush()
}

// readOIDC reads what writeOIDC wrote into the empty f, whose clients and
// users are already read.
func (f *FSM) readOIDC(d *decoder) error {
	if err := f.readConsents(d); err != nil {
		return err
	}
	if err := f.readSessions(d); err != nil {
		return err
	}
	f.keyGen = d.uvarint()
	f.keys = decodeSigningKeys(d)
	if d.err != nil {
		return nil // readSnapshot reports it
	}
	if err := ValidateSigningKeys(f.keys); err != nil {
		return err
	}
	if f.keyGen == 0 && len(f.keys) != 0 {
		return errors.New("signing keys at generation 0")
	}
	return nil
}

func (f *FSM) readConsents(d *decoder) error {
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		k := userKey{d.string(), d.string()}
		client, scope := d.string(), d.string()
		if d.err != nil {
			return nil
		}
		if f.users[k] == nil || f.clients[client] == nil {
			return fmt.Errorf("consent of %q/%q for %q: no such user or client", k.tenant, k.username, client)
		}
		if scope == "" || unionScope("", scope) != scope {
			return fmt.Errorf("consent of %q/%q for %q: malformed scope", k.tenant, k.username, client)
		}
		m := f.consents[k]
		if m == nil {
			m = make(map[string]string)
			f.consents[k] = m
		}
		if _, dup := m[client]; dup {
			return fmt.Errorf("consent of %q/%q for %q appears twice", k.tenant, k.username, client)
		}
		m[client] = scope
	}
	return nil
}

func (f *FSM) readSessions(d *decoder) error {
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		sid := d.hash()
		s := Session{Tenant: d.string(), Username: d.string(), AuthTime: d.varint(), ExpiresAt: d.varint()}
		if d.err != nil {
			return nil
		}
		if sid.IsZero() {
			return errors.New("session with a zero id")
		}
		if f.users[userKey{s.Tenant, s.Username}] == nil {
			return fmt.Errorf("session of %q/%q: no such user", s.Tenant, s.Username)
		}
		if _, dup := f.sessions[sid]; dup {
			return errors.New("session appears twice")
		}
		f.addSession(sid, s)
	}
	return nil
}
