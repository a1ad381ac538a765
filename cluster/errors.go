package cluster

import (
	"errors"
	"time"
)

// Sentinel causes wrapped by UnavailableError; match them with errors.Is.
var (
	ErrNoLeader = errors.New("no cluster leader")
	ErrNoLease  = errors.New("no read lease from the leader")
	ErrTimeout  = errors.New("timed out")
	ErrShutdown = errors.New("node is shut down")
	ErrNotReady = errors.New("new leader has not committed in its term yet")
)

// UnavailableError means "try again later" (no leader, leadership lost,
// forwarding failed, timeout). It implements RetryAfter so the HTTP layer
// can answer 503 with Retry-After without importing this package.
type UnavailableError struct {
	Reason string
	Err    error
	After  time.Duration
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	if e.Reason == "" {
		return e.Err.Error()
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// RetryAfter is how long the client should wait before retrying.
func (e *UnavailableError) RetryAfter() time.Duration { return e.After }

func unavailable(reason string, err error) error {
	return &UnavailableError{Reason: reason, Err: err, After: retryAfter}
}
