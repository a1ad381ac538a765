//go:build !unix

package chaos

import (
	"errors"
	"syscall"
)

// Pauses need SIGSTOP and SIGCONT; elsewhere Run refuses to start.
const (
	sigStop = syscall.Signal(-1)
	sigCont = syscall.Signal(-2)
)

var errUnsupported = errors.New("chaos: needs a unix system (SIGSTOP, SIGCONT)")

func childSysProcAttr() *syscall.SysProcAttr { return nil }
