package main

import (
	"strings"
	"testing"
)

func TestMemoryLimitFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"512MiB", 512 << 20},
		{"2GiB", 2 << 30},
		{"1TiB", 1 << 40},
		{"65536KiB", 64 << 20},
		{"33554432", 32 << 20},
		{"33554432B", 32 << 20},
	} {
		var applied int64
		m := &memoryLimitFlag{apply: func(n int64) int64 { applied = n; return 0 }}
		if err := m.Set(tc.in); err != nil || applied != tc.want || m.limit != tc.want {
			t.Errorf("Set(%q): err %v, applied %d, want %d", tc.in, err, applied, tc.want)
		}
	}
	for _, in := range []string{"", "2GB", "1.5GiB", "-1GiB", "0", "1MiB", "8388608TiB", "GiB", "2 GiB"} {
		applied := false
		m := &memoryLimitFlag{apply: func(int64) int64 { applied = true; return 0 }}
		if err := m.Set(in); err == nil || applied {
			t.Errorf("Set(%q) accepted (applied %v)", in, applied)
		}
	}
}

// TestServeMemoryLimitFlag checks that serve registers the flag (parsing
// it sets the process's limit, so the test puts the old one back).
func TestServeMemoryLimitFlag(t *testing.T) {
	if _, err := parseServe([]string{"--dev", "--memory-limit", "lots"}, new(strings.Builder)); err == nil || !strings.Contains(err.Error(), "memory-limit") {
		t.Fatalf("bad --memory-limit: err %v", err)
	}
}
