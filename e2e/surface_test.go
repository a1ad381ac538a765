package e2e

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNoClusterSurface: a single node without a cluster key serves nothing
// node-to-node: the old /internal/* endpoints are gone from the HTTP port
// (for every method) and nothing listens on its Raft address.
func TestNoClusterSurface(t *testing.T) {
	n := startNode(t, t.TempDir(), nodeOpts{})
	for _, path := range []string{"/internal/apply", "/internal/lease", "/internal/leave", "/internal/"} {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			r := do(t, newReq(t, method, n.URL+path, "application/octet-stream", strings.NewReader("x")))
			if r.Status != http.StatusNotFound || r.errCode(t) != "not_found" {
				t.Errorf("%s %s: %d %s", method, path, r.Status, r.Body)
			}
		}
	}
	if c, err := net.DialTimeout("tcp", n.Opts.RaftAddr, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("a node without a cluster key listens on its raft address %s", n.Opts.RaftAddr)
	}
}
