// Package chaos crashes and pauses real tokend processes under load and
// checks that no acknowledged write is lost (issue 11; make chaos-kill).
//
// # The idea
//
// Run starts a three-node cluster of the tokend binary on 127.0.0.1 (each
// node with its own data directory; the cluster key and admin token in the
// environment, never in argv), registers one client through the admin API
// and starts load workers that issue client_credentials tokens, revoke some
// of them and validate them, on all three nodes. Every answer is recorded in
// a ledger (ledger.go), in memory only: raw tokens are never printed or
// logged; a token is named by its index in the ledger.
//
// While the load runs, a schedule of faults (faults.go) is applied one at a
// time, each followed by a restart and a wait until every node answers
// /readyz with 200 again:
//
//   - leader kill: find the leader (/cluster/status), SIGKILL it, issue
//     tokens through the surviving nodes until one is acknowledged (the time
//     from the kill to that acknowledgement is the failover time), restart
//     the killed process from its data directory with the same flags;
//   - follower kill: the same for a follower;
//   - pause: SIGSTOP a node (alternately a follower and the leader) for a
//     fixed time, then SIGCONT.
//
// At the end (verify.go) the load stops, a last write is acknowledged (so
// every write committed before it is applied on every node that serves
// reads), and every recorded token is validated on every node:
//
//   - a token whose issue was acknowledged (200) and whose revocation was
//     never attempted must be active (/validate 200) everywhere;
//   - a token whose revocation was acknowledged must be inactive (401)
//     everywhere;
//   - a token whose revocation failed or timed out has an unknown outcome:
//     either answer is fine, but all three nodes must give the same one.
//
// A wrong answer for an acknowledged write counts it as lost; Run's Result
// says how many, and the command and the test fail unless it is 0.
//
// # Invariants checked during the load
//
// A validation is a stale read, also counted as a failure, when it answers
// 401 for a token whose issue was acknowledged and whose revocation had
// not been started when the answer arrived, or 200 for a token whose
// revocation had been acknowledged before the validation was sent
// (docs/ARCHITECTURE.md: acknowledged writes are visible on every node that
// answers). Revocations only ever name tokens acknowledged as issued: RFC
// 7009 answers 200 for unknown tokens too, so any other 200 would mean
// nothing.
//
// # What it does not check
//
// Unacknowledged issues cannot be checked (their raw token was never seen).
// Failover times are measurements, printed, never asserted. The finer
// linearizability argument is cmd/tokend's TestLinearizability; this
// package is about durability across many crashes.
//
// # Soak
//
// Soak (soak.go; tokend-chaos soak, make soak) is the other long run: no
// faults, but time. It starts the same three nodes with short token
// lifetimes and a short purge interval, so that tokens expire and are
// purged many times over and the live population levels off within the
// first minutes, and drives tokend-bench mixed against all three as a
// child process, in segments shorter than a token's lifetime
// (soakload.go). A sampler (sample.go) scrapes every node's /metrics every
// few seconds: RSS, heap in use, goroutines, live and purged tokens. At the
// end (soakresult.go) a least-squares line is fitted through each series
// over the steady part of the run, and the soak fails when memory or
// goroutines grow beyond the limits of trend.go (both a rate per hour and a
// share of the level: a short run's GC and scavenger noise must not count
// as a leak, nor a long run's slow one be excused), when the load saw any
// error (a soak has no faults to excuse one), or when nothing was purged.
// docs/RELIABILITY.md (Soak) argues the limits and records the hour.
package chaos
