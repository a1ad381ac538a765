package chaos

import "syscall"

// childSysProcAttr puts each node in its own process group (a terminal's
// Ctrl-C reaches only the driver, which then stops them) and has the kernel
// kill it if the driver dies without cleaning up.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
