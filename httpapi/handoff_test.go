package httpapi

import (
	"encoding/hex"
	"testing"
)

func TestSessionOwner(t *testing.T) {
	id := newSecret("") + "." + hex.EncodeToString([]byte("node-2.eu"))
	if owner, ok := sessionOwner(id); !ok || owner != "node-2.eu" {
		t.Fatalf("sessionOwner(%q) = %q, %v", id, owner, ok)
	}
	for _, bad := range []string{"", newSecret(""), "abc.", "abc.zz", "abc.6"} {
		if owner, ok := sessionOwner(bad); ok {
			t.Errorf("sessionOwner(%q) = %q, want none", bad, owner)
		}
	}
}
