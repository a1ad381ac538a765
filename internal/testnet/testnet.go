// Package testnet hands tests loopback addresses for servers they start.
//
// Tests that start a server on a port chosen in advance (a tokend process,
// a Raft transport, memberlist) must close their probe listener before the
// server binds, and in that gap the kernel may hand the same port to
// something else. Ports from 127.0.0.1:0 come from the ephemeral range,
// which is also where every outgoing connection gets its local port, so
// under load a test's own HTTP clients can take the port first. Ports here
// are picked at random below the ephemeral range instead, where only
// another explicit bind can collide, and are checked free for both TCP and
// UDP (memberlist uses both on one port).
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Addr returns "127.0.0.1:port" with a port that was free for TCP and UDP a
// moment ago.
func Addr(t testing.TB) string {
	t.Helper()
	lo, hi := portRange()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo)))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr
	}
	t.Fatal("testnet: no free loopback port found")
	return ""
}

// portRange is [10000, start of the ephemeral range), falling back to
// [10000, 32768) when the range cannot be read.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	var start, end int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &start, &end); err == nil && start > lo+1000 {
		hi = start
	}
	return lo, hi
}
