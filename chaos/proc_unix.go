//go:build unix && !linux

package chaos

import "syscall"

// childSysProcAttr puts each node in its own process group, so a terminal's
// Ctrl-C reaches only the driver, which then stops them.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
