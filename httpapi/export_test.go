package httpapi

import "github.com/tokend/tokend/fsm"

// NewMemReplicator lends the in-order test replicator to the external
// httpapi_test package.
func NewMemReplicator(f *fsm.FSM) Replicator { return &memReplicator{f: f} }
