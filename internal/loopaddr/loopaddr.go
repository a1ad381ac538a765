// Package loopaddr hands out loopback addresses for servers that are
// started on a port chosen in advance (a tokend process, a Raft transport,
// memberlist), by the tests and by tokend-bench --spawn.
//
// Such a caller must close its probe listener before the server binds, and
// in that gap the kernel may hand the same port to something else. Ports
// from 127.0.0.1:0 come from the ephemeral range, which is also where every
// outgoing connection gets its local port, so under load the caller's own
// HTTP clients can take the port first. Ports here are picked at random
// below the ephemeral range instead, where only another explicit bind can
// collide, and are checked free for both TCP and UDP (memberlist uses both
// on one port).
package loopaddr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// handedOut remembers every port Free returned in this process. A caller
// binds its port later, so a port that is still free may already be
// promised to another caller (three nodes of one test cluster ask for
// nine ports before any binds); this is process-wide by nature, like the
// ports themselves.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Free returns "127.0.0.1:port" with a port that was free for TCP and UDP
// a moment ago and that Free has not returned before in this process.
func Free() (string, error) {
	lo, hi := portRange()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if handedOut.ports[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
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
		handedOut.ports[port] = true
		return addr, nil
	}
	return "", errors.New("loopaddr: no free loopback port found")
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
