// Package bench is the load generator behind the tokend-bench binary.
//
// It drives tokend nodes over their public HTTP contract only (the OAuth
// endpoints and the admin API); it imports nothing from the server.
//
// # Layout
//
//   - config.go, cli.go: the Config struct and the command line that fills it.
//   - loopback.go: target checks (127.0.0.1/localhost only, enforced again at
//     dial time).
//   - wire.go, wire_response.go: the workers' lean HTTP/1.1 client that
//     carries the load; client.go: the net/http client for everything else
//     (seeding, probing, visibility fan-out) and error classes.
//   - oauth.go: pure request builders and response judges for each endpoint.
//   - scenario.go, mixed.go, visibility.go, pool.go: the scenarios and the
//     shared token state they draw from.
//   - seed.go: creating the bench client, users and the pre-issued token pool
//     through the admin API.
//   - baseline.go, baseline_proc.go: the bare net/http server used as the
//     yardstick, in a child process of its own (default) or in this one.
//   - histogram.go, recorder.go, runner.go: latency recording and the load
//     loops.
//   - report.go, table.go, svg.go, progress.go: results and their output.
//   - spawn.go: starting and stopping local tokend nodes.
//   - bench.go: Run, which wires the above together.
//   - suite.go: the standard suite behind make bench, rewriting the generated
//     section of BENCHMARKS.md.
//   - calibrate.go, calibrate_cli.go: tokend-bench calibrate, wrk against
//     this client on the bare baseline (is the load tool the bottleneck?).
//   - etcdput/ (a module of its own, so etcd's client stays out of go.mod)
//     and etcd-compare.sh: etcd's put rate on a three-member local cluster
//     beside tokend's issue-cc, the reference for the write path.
//
// # Measurement
//
// Latency is recorded in HdrHistograms (microsecond resolution, three
// significant digits, up to 60 s). Each worker records into one of a small,
// fixed number of mutex-guarded shards, so recording never contends on a
// global lock and memory does not grow with concurrency. Once per interval
// (--interval, default 1 s) the shards are drained into an interval histogram;
// the run's totals are the merge of its intervals, and the per-interval counts
// give throughput over time.
//
// Two load models are offered. Closed loop (--concurrency N, no --rate): N
// workers each send a request, wait for the answer and send the next. This
// finds maximum throughput but, like every closed-loop tool, suffers from
// coordinated omission: when the server stalls, the workers stop sending, so
// the stall shows up as one slow request instead of the many requests that a
// real client population would have sent in the meantime.
//
// Open loop (--rate R): request i has an intended send time start+i/R fixed
// in advance. Workers (at most --concurrency in flight) claim the next
// request number, sleep until its intended time and send it; latency is
// measured from the intended send time, not from the moment the request was
// actually sent. If the server stalls, the backlog's intended times keep
// moving while the requests wait, so every request that a steady client
// population would have sent during the stall is recorded with the waiting
// it would have suffered. This is the approach of wrk2 and HdrHistogram's
// own guidance, and it is why percentiles from --rate runs are the ones to
// publish.
//
// Warmup (--warmup) runs the same load first and discards it: requests whose
// (intended) start lies in the warmup window are not recorded.
//
// # Why the baseline runs in the same run, in a process of its own
//
// Absolute numbers from a shared or noisy machine (laptops, CI runners, VMs
// with stolen CPU) are not comparable from one run to the next. The baseline
// scenario starts a bare net/http server serving GET /validate with the same
// shape as tokend: it hashes the bearer token, looks it up in a read-locked
// map, and answers with the same headers and body bytes that a probe of the
// real /validate returned. It is driven by the same client, transport,
// concurrency and duration, back to back with the scenario
// (--compare-baseline), so both numbers see the same machine state and the
// same client-side cost. Their ratio (baseline_ratio) is what survives a
// noisy machine; it says how much of the ceiling of Go's HTTP stack on this
// machine tokend reaches.
//
// The baseline server is this same executable re-run as a child process
// (baseline_proc.go), so it is placed exactly like tokend: its own runtime,
// its own scheduler, competing with the generator for the same cores. Run
// inside the bench process instead (--baseline-in-process) it shares the
// generator's scheduler and measured about twice as fast on two cores,
// which would make the ratio a statement about process placement.
//
// # Connection handling
//
// The load is carried by a client of the bench's own (wire.go): each worker
// owns one persistent HTTP/1.1 connection per node, writes each request as
// bytes assembled in a reused buffer (the token spliced in, no URL parse,
// no header map) and reads the answer with a small parser that keeps the
// status and only the headers that frame the body (Content-Length,
// chunked, Connection). net/http's client spent more CPU per request than
// the servers it measured (its pool lock, the two goroutines per
// connection and the channel handoffs between them, header maps), so on a
// small machine the tool saturated first: 20k req/s against a baseline
// that wrk drove at 50k. The client is held to within 1.3x of wrk's rate
// by a calibration (tokend-bench calibrate, calibrate.go), which drives
// the bare baseline with wrk and with this client back to back and prints
// both rates and their ratio; the suite prints it too.
//
// Semantics kept: keep-alive, no compression, no redirects, a per-request
// timeout (a connection deadline), cancellation of the I/O in flight, and
// one retry of a GET (never a POST that may have reached the server) on a
// reused connection the server had closed. There is no pipelining:
// gateways calling /validate do not pipeline.
//
// # Safety
//
// Every target must be 127.0.0.1, ::1 or localhost, checked when parsing the
// flags and again on every dial (the remote address must be loopback), and
// redirects are never followed. Every run is bounded by --duration (at most
// one hour) and --requests. Spawned nodes listen on free loopback ports, keep
// their data in a temporary directory that is removed afterwards, and are
// stopped when the run ends, on SIGINT/SIGTERM, and (on Linux) when the bench
// process dies.
package bench
