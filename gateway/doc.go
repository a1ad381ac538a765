// Package gateway serves GET /validate, the endpoint API gateways call on
// every request they forward (nginx auth_request, Traefik ForwardAuth,
// Envoy ext_authz), from github.com/valyala/fasthttp on a listener of its
// own (tokend serve --validate-addr).
//
// # Why
//
// /validate is where a gateway fleet spends tokend's budget, and once the
// handler itself was down to a hash and a shard read lock, net/http was
// the limit: a profile of a node under wrk showed about 45 % of its time
// in net/http and 42 % in the kernel. fasthttp reuses its request and
// response objects and the connection's buffers, parses only what is
// asked for and writes the answer with one system call. On the 2-vCPU
// machine tokend is developed on (bench/validate-fastpath.sh: wrk -t2
// -c64 on the same cores, interleaved rounds, load average 10-13 from
// other work), a server's CPU time per request, steadier there than
// requests per second, was:
//
//	minimal net/http handler, fixed 163-byte body        18.1 µs
//	minimal fasthttp handler, the same body              10.6 µs (1.71x)
//	minimal validating net/http handler (the yardstick)  20.1 µs
//	GET /validate on the main listener                   22.3 µs
//	GET /validate on this listener                       12.9 µs (1.56x the yardstick)
//	minimal validating fasthttp handler                  12.5 µs
//
// and in requests per second this listener ran at 1.33x the yardstick
// (44k against 33k; medians of three noisy rounds). A profile of the node
// under that load shows about 70 % of its time in read and write system
// calls and about 11 % in this package and httpapi's Validator.
//
// # Why a listener of its own
//
// The alternative was to keep one port and route each connection by its
// first request line: peek at the bytes, hand GET /validate connections to
// fasthttp and everything else to net/http. It was not chosen because a
// keep-alive connection may carry /validate first and /token next (a
// client that is both), so routing by the first request either sends
// later requests to the wrong server or has to re-route mid-connection
// with buffered bytes; TLS would have to be terminated before the peek;
// and every OAuth request would pay the extra buffering. A second port
// costs a gateway one line of configuration, keeps the OAuth endpoints on
// net/http and gorilla/mux untouched, and lets operators firewall it to
// the gateways alone.
//
// # What it serves
//
// GET and HEAD /validate natively; /healthz and /readyz (for the
// gateways' own health checks), a wrong method on /validate and the JSON
// 404 for any other path through httpapi's FastPathFallback via
// fasthttpadaptor. The OAuth, admin and sign-in surfaces are not reachable
// here. /introspect stays on the main listener: served here through
// fasthttpadaptor it ran no faster (21.0k against 21.4k req/s, same
// rounds), and serving it natively would take a second form parser and a
// second client authentication beside httpapi's, two places for the
// length limits and the constant-time secret check to drift apart.
//
// # Invariants
//
//   - One decision: the answer (readiness gate, bearer parsing, lookup,
//     scope check, challenge, header values) comes from
//     httpapi.Validator.Validate, the function the net/http route calls,
//     so the two listeners cannot answer apart; the tests compare them
//     byte for byte.
//   - Same metrics: each request is recorded into the /validate route's
//     series (tokend_http_requests_total, tokend_http_request_duration_seconds
//     with route="/validate"), so dashboards see both listeners as one.
//   - A valid token costs no allocation in this package: header values
//     are appended into a stack buffer and copied by fasthttp.
//   - Bounded: header bytes (16 KiB, where the main port allows 64 KiB:
//     fasthttp holds a buffer that size per connection; more is answered
//     431), body bytes, read/write/idle timeouts and concurrent
//     connections are all capped; Shutdown drains with the rest of
//     tokend serve.
//   - No HSTS header: browsers never talk to this port. --trusted-proxies
//     plays no part either: nothing served here depends on the client's
//     address.
package gateway
