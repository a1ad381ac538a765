//go:build unix

package cluster

import (
	"fmt"
	"os"
	"syscall"
)

// checkOwner refuses to recover a data dir that belongs to another user:
// files Recover writes as root (sudo tokend recover) would leave a node
// that runs as its service user unable to replace or delete them.
func checkOwner(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if euid := os.Geteuid(); uint64(st.Uid) != uint64(euid) {
		return fmt.Errorf("%s belongs to uid %d but this is uid %d: run tokend recover as the user the node runs as "+
			"(e.g. sudo -u tokend tokend recover ...), so the files it writes stay the node's", path, st.Uid, euid)
	}
	return nil
}
