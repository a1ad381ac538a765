//go:build unix

package chaos

import "syscall"

// The pause signals: a stopped process keeps its sockets but answers
// nothing, which is what a long GC pause or a VM stall looks like.
const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// errUnsupported is nil here: every fault works.
var errUnsupported error
