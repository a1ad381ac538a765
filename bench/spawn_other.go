//go:build !linux && !windows

package bench

import "syscall"

// childSysProcAttr puts spawned nodes in their own process group so a
// terminal Ctrl-C reaches only the bench, which then stops them in order.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
