package chaos

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
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

func parseProcStatus(b []byte) (anon, file float64, err error) {
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "RssAnon" && k != "RssFile") {
			continue
		}
		f := strings.Fields(v) // "15312 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc status %s: %q", k, v)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s: %w", k, err)
		}
		if k == "RssAnon" {
			anon = float64(n) * 1024
		} else {
			file = float64(n) * 1024
		}
		seen++
	}
	if seen != 2 {
		return 0, 0, fmt.Errorf("/proc status: RssAnon and RssFile not both found")
	}
	return anon, file, sc.Err()
}
