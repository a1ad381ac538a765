// Package cluster runs tokend's replicated state machine: hashicorp/raft
// (raft-boltdb/v2 log and stable store in DataDir/raft.db behind an
// in-memory cache of the newest log entries, file snapshots retaining 2)
// around an *fsm.FSM, memberlist discovery, bootstrap, membership
// reconciliation, write forwarding and read leases.
//
// # The internal port
//
// Everything nodes say to each other, except gossip, crosses one TCP port,
// RaftAddr (mux.go): Raft's own NetworkTransport and a small binary RPC
// (rpc.go: forwarded writes, lease reports, leave, sign-in hand-off, a
// ping, forwarded backup restores: backup.go), told apart by a first byte
// read only after a TLS 1.3 handshake in which both sides presented
// certificates chaining to the cluster's CA (pki.go). That CA is derived
// from the cluster key (HKDF-SHA256 with salt caSalt gives an Ed25519 seed;
// the self-signed CA has serial 1 and validity caNotBefore to caNotAfter,
// so every node builds the identical certificate; each node mints its own
// leaf, valid leafLifetime, from it at start-up and renews it halfway), or
// supplied by the operator. Nobody without the key (or a certificate of the
// operator's CA) can send a single byte to Raft or the RPC service, and TLS
// makes every record unforgeable and unreplayable, so the calls need no
// signatures, timestamps or nonces of their own. The leader adds a
// gossiping member to the Raft configuration only after a ping over its
// internal port succeeded, so a node that has the gossip key but no trusted
// certificate never becomes a voter nobody can reach. docs/SECURITY.md has
// the threat model.
//
// # Single node
//
// With BootstrapExpect 1, no Join and no Raft state, New bootstraps a
// one-server configuration. No cluster key means no gossip and no internal
// port at all: Raft runs on an in-memory transport, which is all a
// one-server configuration needs, so a dev node has no cluster attack
// surface. The leader commits a Noop command when it
// takes office (the barrier: afterwards its FSM holds every earlier
// committed entry) and proposes fsm.Purge every PurgeInterval. Snapshots
// follow SnapshotThreshold (also TrailingLogs); restart restores the latest
// snapshot and replays the log tail, so every acknowledged write survives.
//
// # Several nodes
//
// memberlist gossips {id, raft, http, version, bootstrap-expect, has-state,
// left} as JSON node metadata, encrypted with the cluster key; Join
// addresses are retried in the background and a failure (for example "no
// installed keys could decrypt the message" for a wrong key) is logged and
// shown in Status.JoinError. With BootstrapExpect N > 1 a node without
// state waits until exactly N alive members, none with state and all
// gossiping the same N, see each other, then bootstraps all N sorted by id;
// every node computes the same list and raft accepts identical bootstraps.
// A mismatched bootstrap-expect is logged as an error and blocks bootstrap.
// A node with Join and BootstrapExpect 1 never bootstraps: it waits to be
// added. The leader reconciles every reconcileInterval and on gossip
// events: an alive member not in the configuration (or with a new raft
// address) is added as a voter; a member that left is removed; a member
// dead longer than DeadServerGrace is removed only if the alive voters
// remain a quorum of the smaller configuration. memberlist's leave event
// does not say "left" versus "dead", so Leave first gossips left=true in
// its metadata, then leaves gossip, then asks the leader (the leave RPC) to
// remove it; the leader also keeps a tombstone for leftTombstone so it does
// not re-add the node.
//
// Any node accepts writes. A follower sends the encoded command (hashes
// only) to the leader's internal port, at the address Raft reports for the
// leader, with group commit (forward.go): concurrent writes queue, and each
// of a few flushers sends everything queued at that moment as one batch
// RPC; the leader proposes the batch's commands back to back (so Raft
// writes them to its log and sends them to followers together), waits once
// for the visibility barrier of the highest index, and answers each
// command separately. A lone write leaves at once: batches form only
// while earlier ones are in flight. A forward is retried (following leader
// changes) only when nothing can have been proposed: it never left the
// queue, no connection could be made, or the peer answered "not the
// leader" for the whole batch or for that command. Every failure that
// means "later" is an *UnavailableError with RetryAfter; Apply gives up
// after applyTimeout.
//
// # Consistency: read leases and a visibility barrier
//
// The guarantee: reads and writes of tokens are linearizable, reads that
// overlap writes included. Once Apply has returned for a write, every node
// that answers reads (ReadReady()==nil) reflects it; and a read that
// reflects a write not yet acknowledged is answered only once every such
// node reflects it, so no later read anywhere misses it. Reads of tokens
// without a write in flight never leave the node. hashicorp/raft alone
// does not give this (followers apply later), so:
//
//  1. A follower may serve reads only while it holds a read lease. Its
//     lease loop sends a lease RPC {id, applied, term} to the leader
//     after every apply batch and every leaseRenew. The leader records the
//     reported applied index and grants a lease (leaseLength) only if the
//     node has applied at least the floor: the highest index acknowledged
//     so far (initially the term's barrier). The holder counts the lease
//     from the moment it sent the request, minus a margin (holderMargin);
//     the leader counts it from when it answered. So the holder always
//     stops first.
//
//  2. The leader acknowledges a write at index i (its own Apply or a
//     forwarded one) only when every node with an unexpired lease (leader's
//     view) has reported applied >= i, and then raises the floor to i. A
//     node that lags just lets its lease lapse: the write waits at most one
//     lease, and the node gets a new lease only once it has applied the
//     floor. A node that keeps reporting at the floor without applying
//     (its state machine stuck while its lease loop runs) is refused a
//     renewal once a write it holds back has waited lagLimit, so no write
//     waits longer than lagLimit + leaseLength for a stuck holder. Grant and acknowledgement decisions are made under one mutex,
//     so a lease granted below i is always waited for. Acknowledgement is
//     monotone in i, so waiting writes sit in a heap by index and the
//     report (or lease expiry, or end of the office wait) that raises the
//     bound releases all of them at once: no timer or goroutine per write,
//     one expiry timer per term (lease.go, leaseTable, which takes the
//     time, term and leadership confirmation as arguments and is tested
//     without Raft: the floor never decreases, an acknowledged index is at
//     or below every valid holder's applied index, a holder stops before
//     the leader's view of its lease, over thousands of random
//     interleavings with drifting clocks and delayed reports).
//
//  3. A new leader acknowledges no write until officeWait = leaseLength +
//     leaderLeaseTimeout + 2*holderMargin after taking office. An old
//     leader L1 grants leases only while raft says it leads; cut off from
//     its quorum it steps down at most leaderLeaseTimeout after its last
//     quorum contact t0, and the new leader took office after t0 (one of
//     its voters stopped answering L1 to vote). So L1's last grant expires,
//     leader-side, before t0 + leaderLeaseTimeout + leaseLength, which is
//     before the new leader's first acknowledgement. Leases of the new
//     leader go only to nodes that applied its barrier, which holds
//     everything acknowledged before.
//
//  4. The leader serves reads once its barrier is applied, while raft
//     reports it as leader of that term, and only within leaderReadWindow
//     (a fraction of officeWait) of the start of its last successful quorum
//     check (every verifyInterval; confirm.go: every other voter is asked
//     for its current term with a message sent after the check began, since
//     raft.VerifyLeader counts an answer to a heartbeat sent before it,
//     which a paused leader finds in its socket on resuming). Everything
//     acknowledged is committed, hence in its log, hence applied after the
//     barrier, so it needs no lease. The time limit is what covers a leader
//     that is paused (SIGSTOP, a long GC or VM stall): raft steps a leader
//     down only when its own timer runs, so after a pause it would
//     otherwise answer queued requests from stale memory while a successor
//     has been acknowledging writes. Every voter that answered the check
//     had not left this term, so a successor took office after the check
//     began and acknowledges nothing for officeWait after that. The same
//     limit gates lease grants, so a resumed old leader grants none. The
//     linearizability test in cmd/tokend found the pause case, and later
//     the stale heartbeat answer; without a
//     lease or a confirmed leadership, ReadReady returns an
//     *UnavailableError.
//
//  5. A node applies entry i before the leader acknowledges it, so a read
//     here could show i while a lease holder that has not applied i yet
//     still answers without it. Hence every node keeps a visibility floor
//     (visible.go): an index that every node allowed to serve reads has
//     applied. The leader's is its lease table's floor, counted only once
//     its office wait is over and its barrier applied (publishedFloor); a
//     follower takes the floor in every lease answer (opLeaseFloor); a
//     node keeps the highest it has heard of. The state machine remembers,
//     per token key, the index of its latest change while that index is
//     above the floor (fsm/recent.go), recording it before the change is
//     visible to readers. A read looks the token up, then asks for that
//     index (fsm.InFlight) and, if there is one, waits until the floor
//     reaches it: the leader waits as a write at that index would
//     (leaseTable.await), a follower asks the leader at once (a lease
//     request carrying the index; the leader answers when its floor is
//     there, or after floorWaitMax, and the follower asks again). The wait
//     is bounded (readVisibleWait, the longest a write waits for a stuck
//     holder; then 503 with Retry-After).
//
//     Why "index <= floor" means "every node serving reads has applied
//     it", across terms. Take a floor F published by the leader L of term
//     T at time t. Every index up to F was acknowledged by L or is its
//     barrier, so it is committed. (a) L itself applied it. (b) Holders of
//     L's leases: a lease is granted only at or above the floor and the
//     floor is raised only to indexes every valid holder has applied
//     (points 1 and 2), and applied indexes only grow. (c) Holders of
//     leases from leaders of earlier terms, and an earlier leader itself:
//     t is after L's office wait, so by point 3 all of them stopped
//     serving before t (that is why the barrier, set as the floor when the
//     term begins, is not published before then: an earlier leader's
//     holder may lack it). (d) Leaders of later terms and their holders:
//     a later leader serves only after applying its barrier, which lies
//     above every index committed when it took office, F included, and
//     leases only to nodes that applied that barrier. A restarted node
//     serves nothing until it holds a lease again, granted at or above the
//     current floor. So F stays true from t on, whichever leader the
//     follower heard it from, and a node may keep the maximum.
//
//     Why the read is then linearizable. A read checks ReadReady's
//     condition once more after its lookup, against the lease end (or the
//     end of the leader's read window) it saw before the lookup
//     (BeginRead's fence, FinishRead): the lookup happened while this node
//     was allowed to serve, so it reflected every write acknowledged
//     before it. If the token it read has no change above the floor, the
//     lookup itself is the read's linearization point: everything it saw
//     was visible everywhere by then. If it had one at index i, the read
//     waits until the floor reaches i and is linearized at that moment,
//     which lies inside its interval; a later change of the same token is
//     above i, so is at or after that moment in floor order. The write i
//     takes effect, for every reader, no later than that moment and no
//     earlier than its own apply. A pause anywhere between the checks is
//     harmless: the second one fails (503) if the lease ran out meanwhile,
//     and the wait does not need the lease.
//
//     What is recorded: every change of a token key in the index (issue,
//     redeem, rotate, the tokens a revocation, reuse detection, a client's
//     or user's deletion or revocation removes) and a restored snapshot
//     (covers every key). The expired tokens a purge drops are not: they
//     expired by the proposer's clock, and expiry is judged by each
//     reader's clock (the assumption below); the leader acknowledges its
//     purges like writes, so the floor moves past them. Client and user
//     records are
//     not tracked: this covers token state, which is what /validate and
//     /introspect answer.
//
//     Mixed versions: a leader of the previous release answers opLeaseFloor
//     as an unknown operation; its followers then report with opLease and
//     serve reads as that release did (acknowledged writes linearizable,
//     in-flight ones not), rechecking every legacyRecheck. A follower of
//     the previous release never asks, and a new leader still waits for
//     its apply reports before publishing, so new nodes keep the full
//     guarantee.
//
// Assumptions: clock *rates* differ by less than the margin (holderMargin
// of leaseLength; clocks need not be synchronized: every duration is
// measured locally with the monotonic clock, which keeps running while a
// process is stopped); a holder's reports arrive in order (its lease loop
// has one request in flight); token expiry is judged by the reading
// node's wall clock, so near an expiry two nodes with skewed clocks may
// disagree, as any reader with a clock would. A follower forwarding a
// write also waits (bounded) until it applied the result locally.
//
// Cost: a write waits for the slowest lease holder's apply report, about
// one extra round trip (commitTimeout is short, so followers learn the
// commit index quickly); under load one report releases every write it
// covers; after a leader change writes pause for officeWait
// while reads continue on nodes whose leases are still valid. A read pays
// two atomic loads and one clock read more than before; only a read of a
// token with a write in flight (from its apply to the next floor rise,
// about one round trip) waits, for about one round trip: on the leader
// the holders' next apply reports, on a follower one lease request. Reads
// of every other token stay purely local. Right after a leader change (or
// a restart, whose restored snapshot and replayed log count as in flight)
// reads of tokens changed above the floor the new leader knew wait for its
// office wait, as writes do. Memory: nothing per token; the
// in-flight record holds a key and an index per change until the floor
// passes it, at most 65536 keys (beyond that one index covers all keys).
//
// Timing: every duration above is a constant in config.go, which owns the
// values: heartbeatTimeout, electionTimeout and leaderLeaseTimeout are
// generous enough that loopback CI with -race on two busy cores does not
// flap; failover with writes resuming takes about 3-4 s in tests.
//
// # Disk faults
//
// Nothing is acknowledged that is not on the disks of a quorum: Raft
// counts an entry towards the commit only once StoreLogs returned, and a
// leader whose StoreLogs fails (a full disk, a failed fsync) answers the
// waiting writes with the error and steps down; a follower whose append
// fails answers it with a failure. Every raft.db write goes through
// healthStore (diskhealth.go): while the last one failed, ReadReady returns
// "disk: <op>: <error>" (so /readyz answers 503 with it), Status carries
// disk_fault, the log says it once per change, and the node asks for no
// read lease (a holder that cannot apply would hold back every
// acknowledgement waiting for it). The next write of the same kind (log
// append, or term and vote) that succeeds clears the condition. Raft panics when it cannot persist a new term, and failing
// the write would let a restarted node vote twice in one term, so a failing
// term or vote write is retried every stableRetry instead: the node stops
// answering Raft (like a paused process, which the argument above covers)
// and carries on when the disk takes writes again; Shutdown then returns
// only when its context ends. Pipelined replication is off
// (MaxRPCsInFlight 1): hashicorp/raft#612 wedges replication to a follower
// for good after it answered one append with a failure.
//
// At start-up (startcheck.go) raft.db is opened only if its pages lie
// within the file (bbolt would fault on a truncated one) and every log
// entry decodes; a panic or memory fault inside bbolt becomes an error.
// Raft would skip a snapshot whose meta.json it cannot read, fall back to
// an older snapshot when one fails its CRC or the state machine's restore,
// and then panic (or start empty) when the log no longer continues from
// it. The node refuses to start instead, whenever the restored snapshot
// plus the log would not reach every index a snapshot directory or the log
// reached, with an error naming each unusable file; a fall-back the log
// does cover is allowed.
package cluster
