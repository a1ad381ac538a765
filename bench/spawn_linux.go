package bench

import "syscall"

// childSysProcAttr puts spawned nodes in their own process group (so a
// terminal Ctrl-C reaches only the bench, which then stops them in order)
// and has the kernel kill them if the bench process dies without cleaning
// up.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
