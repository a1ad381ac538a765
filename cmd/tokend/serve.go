package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
	"github.com/tokend/tokend/keys"
)

type serveConfig struct {
	nodeID, dataDir                string
	httpAddr, raftAddr, gossipAddr string
	adminAddr                      string
	validateAddr                   string // gateway.Server, validateaddr.go
	trustedProxies                 listFlag
	proxies                        []netip.Prefix // parsed --trusted-proxies
	join                           listFlag
	bootstrapExpect                int
	clusterKey, clusterKeyFile     string
	adminToken, adminTokenFile     string
	internalTLS                    cluster.TLSFiles
	accessTTL, refreshTTL, codeTTL time.Duration
	idTokenTTL                     time.Duration // 0: accessTTL
	refreshGrace                   time.Duration
	deadServerGrace                time.Duration
	purgeInterval                  time.Duration
	snapshotThreshold              uint64
	issuer                         string
	tlsCert, tlsKey                string
	cookieSecure                   bool
	dev                            bool
	leaveOnTerminate               bool
	logLevel, logFormat            string
	devTempDir                     string // removed on exit

	// fileKeys are the keys read from --cluster-key-file, primary first.
	fileKeys [][]byte
	// looseFiles are secret files that group or others may access,
	// logged once the logger exists.
	looseFiles []looseFile
	// signingKeys signs ID tokens and JWT access tokens (signing.go);
	// signingAlgs are its algorithms, the first the one it signs with.
	signingKeys *keys.Manager
	signingAlgs algsFlag
}

type looseFile struct {
	flag, path string
	mode       os.FileMode
}

// argvWarning ends the help of every flag that carries a secret on the
// command line.
func argvWarning(fileFlag string) string {
	return "; the command line is visible to every local user (ps), so prefer --" + fileFlag
}

// minAdminToken is httpapi.MinAdminTokenLen, checked here too so a short
// token fails before anything starts.
const minAdminToken = httpapi.MinAdminTokenLen

func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	host, _ := os.Hostname()
	c := &serveConfig{}
	fs := newFlagSet("tokend serve", stderr)
	fs.StringVar(&c.nodeID, "node-id", host, "unique, stable node name")
	fs.StringVar(&c.dataDir, "data-dir", "", "Raft log, stable store and snapshots (default ./data/<node-id>; --dev: a temporary directory)")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "OAuth and health HTTP address; also the admin surface unless --admin-addr is set")
	fs.StringVar(&c.adminAddr, "admin-addr", "", "own listener for /admin/*, /metrics, /cluster/status and /debug/pprof/, which then answer 404 on --http-addr (empty: all on --http-addr)")
	fs.StringVar(&c.validateAddr, "validate-addr", "", validateAddrUsage)
	fs.Var(&c.trustedProxies, "trusted-proxies", "comma-separated CIDR prefixes (or addresses) of reverse proxies whose X-Forwarded-For / Forwarded headers name the client address that failed sign-ins count against (empty: the TCP peer is the client; headers are never read)")
	fs.StringVar(&c.raftAddr, "raft-addr", "127.0.0.1:8300", "the internal port: Raft and node-to-node calls, mutual TLS (a single node without a cluster key opens none)")
	fs.StringVar(&c.gossipAddr, "gossip-addr", "127.0.0.1:8301", "memberlist gossip address")
	fs.Var(&c.join, "join", "comma-separated gossip addresses of existing members")
	fs.IntVar(&c.bootstrapExpect, "bootstrap-expect", 1, "servers to wait for before bootstrapping a new cluster")
	fs.StringVar(&c.clusterKey, "cluster-key", "", "base64 32-byte key: encrypts gossip; the internal port's certificates derive from it (required when bootstrap-expect > 1)"+argvWarning("cluster-key-file"))
	fs.StringVar(&c.clusterKeyFile, "cluster-key-file", "", "file of base64 32-byte cluster keys, one per line (# comments): the first is used, the rest are also accepted during a key rotation")
	fs.StringVar(&c.adminToken, "admin-token", "", "bearer token (at least 32 bytes) for /admin/*, /cluster/status and /debug/pprof/ (empty: all three disabled)"+argvWarning("admin-token-file"))
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "file holding the admin token (trailing whitespace ignored)")
	fs.StringVar(&c.internalTLS.CertFile, "internal-tls-cert", "", "PEM certificate of this node for the internal port, from the operator's PKI instead of the key-derived CA (with --internal-tls-key and --internal-tls-ca)")
	fs.StringVar(&c.internalTLS.KeyFile, "internal-tls-key", "", "PEM private key for --internal-tls-cert")
	fs.StringVar(&c.internalTLS.CAFile, "internal-tls-ca", "", "PEM CA bundle that peers' internal certificates must chain to")
	fs.DurationVar(&c.accessTTL, "access-token-ttl", 30*time.Minute, "access token lifetime")
	fs.DurationVar(&c.refreshTTL, "refresh-token-ttl", 12*time.Hour, "refresh token lifetime")
	fs.DurationVar(&c.codeTTL, "code-ttl", 60*time.Second, "authorization code lifetime")
	fs.DurationVar(&c.idTokenTTL, "id-token-ttl", 0, "OpenID Connect ID token lifetime (default: --access-token-ttl)")
	fs.DurationVar(&c.refreshGrace, "refresh-grace", 5*time.Second, "how long a just-rotated refresh token may be retried without counting as reuse")
	fs.DurationVar(&c.deadServerGrace, "dead-server-grace", 10*time.Minute, "remove a member that has been dead this long (never below quorum)")
	fs.DurationVar(&c.purgeInterval, "purge-interval", time.Minute, "how often the leader purges expired tokens")
	fs.Uint64Var(&c.snapshotThreshold, "snapshot-threshold", 8192, "log entries between automatic snapshots")
	fs.Var(newMemoryLimitFlag(), "memory-limit", memoryLimitUsage)
	fs.Var(&c.signingAlgs, "signing-algs", signingAlgsUsage)
	fs.StringVar(&c.issuer, "issuer", "", "the URL clients know this service by: iss in metadata, introspection and authorization responses; required for a cluster (--bootstrap-expect > 1 or --join), the same on every node (default for a single node: http(s)://<http-addr>); an https issuer turns on HSTS")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (HTTPS when both cert and key are set)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS key file")
	fs.BoolVar(&c.cookieSecure, "cookie-secure", false, "mark session cookies Secure even when serving plain HTTP (behind a TLS-terminating proxy); always on with --tls-cert")
	fs.BoolVar(&c.dev, "dev", false, "single dev node on loopback: a fresh temporary data dir, seeds a demo client and user, prints curl lines (command line only: TOKEND_DEV is not read)")
	fs.BoolVar(&c.leaveOnTerminate, "leave-on-terminate", false, "leave the cluster gracefully on SIGINT/SIGTERM")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text (logfmt-style key=value lines) or json (one JSON object a line, for log shippers); Raft's and gossip's logs too")
	// --dev has no environment twin: an exported TOKEND_DEV must not
	// turn a node into one with a known password (checkDevEnv).
	if err := parseWithEnv(fs, args, "dev"); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := c.checkDevEnv(); err != nil {
		return nil, err
	}
	return c, c.check()
}

func (c *serveConfig) check() error {
	if c.nodeID == "" {
		return errors.New("--node-id is required")
	}
	if c.bootstrapExpect < 1 {
		return errors.New("--bootstrap-expect must be at least 1")
	}
	if c.dev && (c.bootstrapExpect > 1 || len(c.join) > 0) {
		return errors.New("--dev runs a single node; drop --bootstrap-expect/--join")
	}
	if err := c.checkDev(); err != nil {
		return err
	}
	if c.clusterKey != "" && c.clusterKeyFile != "" {
		return errors.New("give one of --cluster-key and --cluster-key-file, not both")
	}
	if c.adminToken != "" && c.adminTokenFile != "" {
		return errors.New("give one of --admin-token and --admin-token-file, not both")
	}
	if err := c.readSecretFiles(); err != nil {
		return err
	}
	hasKey := c.clusterKey != "" || len(c.fileKeys) > 0
	if (c.bootstrapExpect > 1 || len(c.join) > 0) && !hasKey {
		return errors.New("--cluster-key-file (or --cluster-key) is required for a cluster (bootstrap-expect > 1 or --join); generate a key with: head -c32 /dev/urandom | base64")
	}
	if err := c.checkIssuer(); err != nil {
		return err
	}
	if t := c.internalTLS; t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" {
		if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
			return errors.New("--internal-tls-cert, --internal-tls-key and --internal-tls-ca go together")
		}
		if !hasKey {
			return errors.New("--internal-tls-cert/-key/-ca need a cluster key too (--cluster-key-file): it encrypts gossip")
		}
	}
	if c.adminToken != "" {
		if len(c.adminToken) < minAdminToken {
			return fmt.Errorf("--admin-token must be at least %d bytes (got %d); generate one with: head -c32 /dev/urandom | base64", minAdminToken, len(c.adminToken))
		}
		if strings.IndexFunc(c.adminToken, unicode.IsControl) >= 0 {
			return errors.New("--admin-token must be one line of printable characters")
		}
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	proxies, err := httpapi.ParseTrustedProxies(c.trustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	c.proxies = proxies
	for name, d := range map[string]time.Duration{"access-token-ttl": c.accessTTL, "refresh-token-ttl": c.refreshTTL, "code-ttl": c.codeTTL} {
		if d <= 0 {
			return fmt.Errorf("--%s must be positive", name)
		}
	}
	if c.idTokenTTL < 0 {
		return errors.New("--id-token-ttl must not be negative")
	}
	return nil
}

// readSecretFiles reads --admin-token-file and --cluster-key-file, and
// notes secret files that others may read.
func (c *serveConfig) readSecretFiles() error {
	if c.adminTokenFile != "" {
		b, err := c.readSecret("admin-token-file", c.adminTokenFile)
		if err != nil {
			return err
		}
		c.adminToken = strings.TrimRightFunc(string(b), unicode.IsSpace)
		if c.adminToken == "" {
			return fmt.Errorf("--admin-token-file %s is empty", c.adminTokenFile)
		}
	}
	if c.clusterKeyFile != "" {
		b, err := c.readSecret("cluster-key-file", c.clusterKeyFile)
		if err != nil {
			return err
		}
		if c.fileKeys, err = parseKeyFile(b); err != nil {
			return fmt.Errorf("--cluster-key-file %s: %w", c.clusterKeyFile, err)
		}
	}
	if c.internalTLS.KeyFile != "" {
		c.checkMode("internal-tls-key", c.internalTLS.KeyFile)
	}
	return nil
}

// maxSecretFile bounds what a secret file may hold (a key file with a few
// keys and comments is well under a kilobyte).
const maxSecretFile = 64 << 10

func (c *serveConfig) readSecret(flagName, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("--%s %s: larger than %d bytes", flagName, path, maxSecretFile)
	}
	c.checkMode(flagName, path)
	return b, nil
}

// checkMode notes a secret file that its group or others may access: only
// a warning, since the file may be meant for a group the service is in.
func (c *serveConfig) checkMode(flagName, path string) {
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.looseFiles = append(c.looseFiles, looseFile{flag: "--" + flagName, path: path, mode: fi.Mode().Perm()})
	}
}

// parseKeyFile reads cluster keys: base64 (standard encoding) of 32 bytes,
// one a line; blank lines and everything after a # are ignored. The first
// key is the primary.
func parseKeyFile(b []byte) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(k) != 32 {
			// The line itself is not quoted: it may be a key.
			return nil, fmt.Errorf("line %d is not base64 of exactly 32 bytes", i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no key")
	}
	return keys, nil
}

// keys returns the primary cluster key (nil without one) and the further
// keys accepted during a rotation.
func (c *serveConfig) keys() ([]byte, [][]byte, error) {
	if len(c.fileKeys) > 0 {
		return c.fileKeys[0], c.fileKeys[1:], nil
	}
	k, err := c.key()
	return k, nil, err
}

// key decodes --cluster-key.
func (c *serveConfig) key() ([]byte, error) {
	if c.clusterKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(c.clusterKey)
	if err != nil || len(k) != 32 {
		return nil, errors.New("--cluster-key must be base64 of exactly 32 bytes")
	}
	return k, nil
}

// newLogger builds the process's logger: every line on stderr, tokend's
// own and (through cluster's hclog adapter) Raft's and memberlist's, goes
// through it, so --log-format json makes each line one JSON object.
func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, log, err := parseServeAndLog(args, stderr)
	if err != nil {
		return err
	}
	key, acceptKeys, err := c.keys()
	if err != nil {
		return err
	}
	if c.dev {
		if err := c.devDefaults(); err != nil {
			return err
		}
		defer c.devCleanup()
	}
	scheme, err := c.resolveDefaults(log)
	if err != nil {
		return err
	}

	// Listen before starting consensus so a taken port fails at once and
	// the address gossiped to peers is already being served.
	ln, adminLn, err := c.listen()
	if err != nil {
		return err
	}
	defer ln.Close()
	if adminLn != nil {
		defer adminLn.Close()
	}
	validateLn, err := c.listenValidate()
	if err != nil {
		return err
	}
	if validateLn != nil {
		defer validateLn.Close()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	state := fsm.New()
	node, err := c.startNode(ctx, key, acceptKeys, advertisedHTTP(scheme, ln.Addr().String()), state, log, reg)
	if err != nil {
		return err
	}
	if c.signingKeys, err = c.newSigningKeys(key, acceptKeys, state, node); err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	api, err := c.newAPI(state, node, adminLn != nil, scheme, log, reg)
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	node.ServeHandOffs(api.HandOffHandler())
	s := c.startServers(api, ln, adminLn, scheme, log)
	gw, err := c.startGateway(api, validateLn, log, s.errs)
	if err != nil {
		_ = shutdown(s.srv, s.adminSrv, node, false, log)
		return err
	}
	c.logServing(log, s, validateLn, scheme, len(key) > 0)

	if c.dev {
		if err := c.seedDemo(ctx, node, s.baseURL, cmp.Or(s.adminURL, s.baseURL), stdout); err != nil {
			log.Error("seeding demo data failed", "err", err)
		}
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-s.errs:
		log.Error("http server stopped", "err", err)
	}
	stopGateway(gw, log)
	return shutdown(s.srv, s.adminSrv, node, c.leaveOnTerminate, log)
}

// parseServeAndLog parses the serve command line, builds the logger and
// warns about secret files that group or others may access.
func parseServeAndLog(args []string, stderr io.Writer) (*serveConfig, *slog.Logger, error) {
	c, err := parseServe(args, stderr)
	if err != nil {
		return nil, nil, err
	}
	log, err := newLogger(c.logLevel, c.logFormat, stderr)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range c.looseFiles {
		log.Warn("secret file is accessible to group or others; chmod 600 it",
			"flag", f.flag, "file", f.path, "mode", fmt.Sprintf("%04o", f.mode))
	}
	return c, log, nil
}

// resolveDefaults fills in the data dir (refusing a dev node's outside
// --dev) and the issuer, and returns the HTTP scheme this node serves.
func (c *serveConfig) resolveDefaults(log *slog.Logger) (scheme string, err error) {
	if c.dataDir == "" {
		c.dataDir = filepath.Join("data", c.nodeID)
	}
	if !c.dev {
		if err := refuseDevData(c.dataDir); err != nil {
			return "", err
		}
	}
	scheme = "http"
	if c.tlsCert != "" {
		scheme = "https"
	}
	if c.issuer == "" {
		c.issuer = scheme + "://" + c.httpAddr
	}
	if strings.HasPrefix(c.issuer, "https://") && scheme == "http" && !c.cookieSecure {
		log.Warn("--issuer is https but this node serves plain HTTP without --cookie-secure: behind a TLS-terminating proxy, add --cookie-secure so session cookies are marked Secure")
	}
	return scheme, nil
}

// listen opens --http-addr and, when set, --admin-addr (adminLn nil
// otherwise). On an error nothing is left open.
func (c *serveConfig) listen() (ln, adminLn net.Listener, err error) {
	ln, err = net.Listen("tcp", c.httpAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on --http-addr: %w", err)
	}
	if c.adminAddr != "" {
		if adminLn, err = net.Listen("tcp", c.adminAddr); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("listen on --admin-addr: %w", err)
		}
	}
	return ln, adminLn, nil
}

// startNode starts the cluster node that replicates state.
func (c *serveConfig) startNode(ctx context.Context, key []byte, acceptKeys [][]byte, httpAddr string, state *fsm.FSM, log *slog.Logger, reg prometheus.Registerer) (*cluster.Node, error) {
	node, err := cluster.New(ctx, cluster.Config{
		NodeID:            c.nodeID,
		DataDir:           c.dataDir,
		RaftAddr:          c.raftAddr,
		GossipAddr:        c.gossipAddr,
		HTTPAddr:          httpAddr,
		Join:              c.join,
		BootstrapExpect:   c.bootstrapExpect,
		ClusterKey:        key,
		AcceptKeys:        acceptKeys,
		InternalTLS:       c.internalTLS,
		DeadServerGrace:   c.deadServerGrace,
		PurgeInterval:     c.purgeInterval,
		SnapshotThreshold: c.snapshotThreshold,
		Version:           version,
		FSM:               state,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		return nil, fmt.Errorf("start cluster node: %w", err)
	}
	return node, nil
}

// newAPI builds the HTTP API over state and node.
func (c *serveConfig) newAPI(state *fsm.FSM, node *cluster.Node, separateAdmin bool, scheme string, log *slog.Logger, reg *prometheus.Registry) (*httpapi.Server, error) {
	return httpapi.New(httpapi.Config{
		FSM:           state,
		Replicator:    node,
		Status:        func() any { return node.Status() },
		Leave:         node.Leave,
		NodeID:        c.nodeID,
		HandOff:       node.HandOff,
		Issuer:        c.issuer,
		AdminToken:    c.adminToken,
		SeparateAdmin: separateAdmin,
		AccessTTL:     c.accessTTL,
		RefreshTTL:    c.refreshTTL,
		CodeTTL:       c.codeTTL,
		IDTokenTTL:    c.idTokenTTL,
		RefreshGrace:  c.refreshGrace,
		Signer:        c.signingKeys,
		Keys:          c.signingKeys,
		SecureCookies: scheme == "https" || c.cookieSecure,
		Logger:        log,
		Registry:      reg,

		TrustedProxies: c.proxies,
	})
}

// httpServers are the running HTTP servers: srv on --http-addr, adminSrv
// on --admin-addr (nil without one). Each sends on errs when it stops.
type httpServers struct {
	srv, adminSrv     *http.Server
	errs              chan error
	baseURL, adminURL string
}

// startServers serves api on ln and, when adminLn is not nil, its admin
// handler on adminLn.
func (c *serveConfig) startServers(api *httpapi.Server, ln, adminLn net.Listener, scheme string, log *slog.Logger) *httpServers {
	newServer := func(h http.Handler, writeTimeout time.Duration) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	s := &httpServers{errs: make(chan error, 2)}
	serveOn := func(srv *http.Server, ln net.Listener, name string) {
		go func() {
			var err error
			if c.tlsCert != "" {
				srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
				err = srv.ServeTLS(ln, c.tlsCert, c.tlsKey)
			} else {
				err = srv.Serve(ln)
			}
			s.errs <- fmt.Errorf("%s: %w", name, err)
		}()
	}
	s.srv = newServer(withHSTS(c.issuer, c.dev, api), 30*time.Second)
	serveOn(s.srv, ln, "--http-addr")
	s.baseURL = scheme + "://" + ln.Addr().String()
	if adminLn != nil {
		s.adminSrv = newServer(api.AdminHandler(), adminWriteTimeout)
		serveOn(s.adminSrv, adminLn, "--admin-addr")
		s.adminURL = scheme + "://" + adminLn.Addr().String()
	}
	return s
}

// adminWriteTimeout lets /debug/pprof/profile and /debug/pprof/trace
// stream for up to ?seconds=119 (pprof refuses a duration at or over the
// server's WriteTimeout).
const adminWriteTimeout = 2 * time.Minute

// advertisedHTTP is the address peers forward writes to: host:port for
// plain HTTP, a base URL when the node serves TLS.
func advertisedHTTP(scheme, addr string) string {
	if scheme == "https" {
		return scheme + "://" + addr
	}
	return addr
}

// shutdown stops taking requests, optionally leaves the cluster, then stops
// Raft, each step bounded so a wedged peer cannot hold the process.
func shutdown(srv, adminSrv *http.Server, node *cluster.Node, leave bool, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if leave {
		if err := node.Leave(ctx); err != nil {
			log.Warn("leaving the cluster failed", "err", err)
		}
	}
	// The admin listener drains alongside, briefly: a profile still
	// streaming is cut off rather than allowed to hold up Raft's shutdown.
	adminDone := make(chan struct{})
	go func() {
		defer close(adminDone)
		if adminSrv == nil {
			return
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := adminSrv.Shutdown(actx); err != nil {
			log.Warn("admin listener did not drain; closing it", "err", err)
			_ = adminSrv.Close()
		}
	}()
	httpErr := srv.Shutdown(ctx)
	<-adminDone
	if err := node.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if httpErr != nil && !errors.Is(httpErr, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", httpErr)
	}
	return nil
}

// logServing says once where this node serves what.
func (c *serveConfig) logServing(log *slog.Logger, s *httpServers, validateLn net.Listener, scheme string, internal bool) {
	attrs := []any{"node_id", c.nodeID, "http", s.baseURL}
	if s.adminURL != "" {
		attrs = append(attrs, "admin", s.adminURL)
	}
	if validateLn != nil {
		attrs = append(attrs, "validate", scheme+"://"+validateLn.Addr().String())
	}
	if internal {
		attrs = append(attrs, "internal", c.raftAddr, "gossip", c.gossipAddr)
	} else {
		// Nothing listens there: Raft runs in memory (cluster/doc.go).
		attrs = append(attrs, "internal", "none (single node without a cluster key)")
	}
	log.Info("tokend serving", append(attrs, "data_dir", c.dataDir, "version", version)...)
}
