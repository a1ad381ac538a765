package chaos

import (
	"fmt"
	"os"
)

// procRSS reads the anonymous and file-backed parts of pid's resident set
// from /proc/<pid>/status, in bytes. process_resident_memory_bytes is their
// sum, but only the anonymous part is the process's own memory (heap,
// stacks, runtime); the file-backed part is the executable's pages and
// raft-boltdb's memory map of the Raft log, which the kernel pages in as
// code runs and the file grows, and may drop again under pressure.
func procRSS(pid int) (anon, file float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseProcStatus(b)
}
