package loopaddr

import "testing"

// ForTest is Free for tests: it returns the address, or fails tb at once
// when no free port is found. It is the one free-port helper of every test
// in this module.
func ForTest(tb testing.TB) string {
	tb.Helper()
	addr, err := Free()
	if err != nil {
		tb.Fatal(err)
	}
	return addr
}
