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
// Retry-After, never a stale one. A token read (validate, introspect) asks
// twice: BeginRead before the lookup, FinishRead after it with the fsm's
// index of a write to that token still in flight, if any, so an answer
// that reflects an unacknowledged write waits until every node serving
// reads has applied it (package cluster's doc, "Consistency").
//
// # The hot paths
//
// Token issuance and introspection are written for cost per request
// (BenchmarkTokenClientCredentials, BenchmarkIntrospectHandler): the POST
// endpoints and /validate skip gorilla/mux (ServeHTTP), a form body is
// read into a pooled buffer and parsed once, and the token and
// introspection answers are appended by hand into pooled buffers
// (jsonbody.go), byte for byte what encoding/json would write. Client
// secrets are 256 random bits that tokend generates, so verifying one is a
// single SHA-256 and a constant-time compare: a slow password hash would
// protect nothing there, and there is no verified-secret cache to bound or
// to invalidate on rotation. User passwords are the only argon2id on a
// request path (the password grant and the login page).
//
// # OpenID Connect
//
// With a Signer (the cluster's replicated key set, package keys) the
// server is an OpenID provider (oidcauthz.go, idtoken.go, sso.go,
// userinfo.go, metadata.go, jwks.go, endsession.go). Everything an ID
// token says comes from the grant, which travels through Raft with its
// nonce and auth_time, so any node signs it. ID tokens are never indexed,
// so no endpoint takes one for an access token. The single sign-on
// session is replicated as the hash of its cookie only, like every other
// secret, and so is consent memory (plain data): an OpenID sign-in started
// on one node continues on any other. Without a Signer none of it is
// served or advertised, and an openid request is refused as invalid_scope.
//
// The package does not know how consensus works: it declares the
// methods it needs (Replicator) and cmd/tokend wires the cluster in.
package httpapi
