package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one tokend process, restartable from its data directory with the
// same arguments and environment.
type node struct {
	id                             string
	httpAddr, raftAddr, gossipAddr string
	logPath                        string
	bin                            string
	args                           []string
	env                            []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	paused bool
}

func (n *node) url() string { return "http://" + n.httpAddr }

// start runs the process; its output is appended to logPath, so one file
// holds every incarnation.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !isClosed(n.exited) {
		return fmt.Errorf("%s is already running", n.id)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n=== chaos: starting %s at %s ===\n", n.id, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(n.bin, n.args...)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", n.id, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.paused = cmd, exited, false
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// running says whether the process is alive (paused counts as alive).
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !isClosed(n.exited)
}

// serving says whether the node is alive and not paused: worth asking.
func (n *node) serving() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !isClosed(n.exited) && !n.paused
}

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || isClosed(n.exited) {
		return fmt.Errorf("%s is not running", n.id)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", n.id, sig, err)
	}
	switch sig {
	case sigStop:
		n.paused = true
	case sigCont:
		n.paused = false
	}
	return nil
}

// kill sends SIGKILL and waits until the process is gone.
func (n *node) kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return nil
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		n.mu.Lock()
		n.paused = false
		n.mu.Unlock()
		return nil
	case <-time.After(30 * time.Second):
		return errors.New(n.id + " did not exit after SIGKILL")
	}
}

// logTail is the last lines of the node's log, for failure reports.
func (n *node) logTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
