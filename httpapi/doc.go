// Package httpapi serves tokend's HTTP surface: the OAuth 2.0 endpoints
// (authorize, token, revoke, introspect, validate, metadata), the login and
// consent pages, the admin API, and health, readiness, status and metrics.
//
// Writes never touch local state directly. A handler turns a request into an
// fsm command carrying only hashes — raw tokens and secrets are generated
// here, hashed, and exist only in the response to the client that asked —
// and hands it to the Replicator, which returns once the command is applied
// and visible wherever reads are served. Reads (validate, introspect, client
// and user lookups) come straight from the local fsm, but only while the
// Replicator says this node may serve them; otherwise the answer is 503 with
// Retry-After, never a stale one.
//
// The package does not know how consensus works: it declares the two
// methods it needs (Replicator) and cmd/tokend wires the cluster in.
package httpapi
