package cluster

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestHclogValues: hclog's value wrappers reach slog formatted as hclog
// would format them, and a JSON handler writes one object a line.
func TestHclogValues(t *testing.T) {
	var b strings.Builder
	h := newHclog(slog.New(slog.NewJSONHandler(&b, nil)), "raft")
	h.With("peer", hclog.Quote("n2")).Info("initial configuration",
		"servers", hclog.Fmt("%+v", []struct{ ID string }{{"n1"}}), "mask", hclog.Hex(255),
		"mode", hclog.Octal(8), "bits", hclog.Binary(5), "plain", 7)
	h.StandardLogger(nil).Print("[WARN] memberlist: Was able to connect to n2 over TCP but UDP probes failed")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), b.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg": "initial configuration", "component": "raft", "peer": `"n2"`,
		"servers": "[{ID:n1}]", "mask": "0xff", "mode": "010", "bits": "0b101", "plain": float64(7)} {
		if rec[k] != want {
			t.Errorf("%s = %#v, want %#v (%s)", k, rec[k], want, lines[0])
		}
	}
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec["level"] != "WARN" ||
		rec["msg"] != "memberlist: Was able to connect to n2 over TCP but UDP probes failed" {
		t.Errorf("memberlist line: %v %s", err, lines[1])
	}
}
