package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
)

type serveConfig struct {
	nodeID, dataDir                string
	httpAddr, raftAddr, gossipAddr string
	join                           listFlag
	bootstrapExpect                int
	clusterKey                     string
	adminToken                     string
	accessTTL, refreshTTL, codeTTL time.Duration
	refreshGrace                   time.Duration
	deadServerGrace                time.Duration
	purgeInterval                  time.Duration
	snapshotThreshold              uint64
	issuer                         string
	tlsCert, tlsKey                string
	dev                            bool
	leaveOnTerminate               bool
	logLevel                       string
	devTempDir                     string // removed on exit
}

func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	host, _ := os.Hostname()
	c := &serveConfig{}
	fs := newFlagSet("tokend serve", stderr)
	fs.StringVar(&c.nodeID, "node-id", host, "unique, stable node name")
	fs.StringVar(&c.dataDir, "data-dir", "", "Raft log, stable store and snapshots (default ./data/<node-id>; --dev: a temporary directory)")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "OAuth, admin, health and metrics HTTP address")
	fs.StringVar(&c.raftAddr, "raft-addr", "127.0.0.1:8300", "Raft transport address")
	fs.StringVar(&c.gossipAddr, "gossip-addr", "127.0.0.1:8301", "memberlist gossip address")
	fs.Var(&c.join, "join", "comma-separated gossip addresses of existing members")
	fs.IntVar(&c.bootstrapExpect, "bootstrap-expect", 1, "servers to wait for before bootstrapping a new cluster")
	fs.StringVar(&c.clusterKey, "cluster-key", "", "base64 32-byte key: encrypts gossip, authenticates internal calls (required when bootstrap-expect > 1)")
	fs.StringVar(&c.adminToken, "admin-token", "", "bearer token for /admin/* (empty: admin API disabled)")
	fs.DurationVar(&c.accessTTL, "access-token-ttl", 30*time.Minute, "access token lifetime")
	fs.DurationVar(&c.refreshTTL, "refresh-token-ttl", 12*time.Hour, "refresh token lifetime")
	fs.DurationVar(&c.codeTTL, "code-ttl", 60*time.Second, "authorization code lifetime")
	fs.DurationVar(&c.refreshGrace, "refresh-grace", 5*time.Second, "how long a just-rotated refresh token may be retried without counting as reuse")
	fs.DurationVar(&c.deadServerGrace, "dead-server-grace", 10*time.Minute, "remove a member that has been dead this long (never below quorum)")
	fs.DurationVar(&c.purgeInterval, "purge-interval", time.Minute, "how often the leader purges expired tokens")
	fs.Uint64Var(&c.snapshotThreshold, "snapshot-threshold", 8192, "log entries between automatic snapshots")
	fs.StringVar(&c.issuer, "issuer", "", "iss in metadata and introspection (default http(s)://<http-addr>)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (HTTPS when both cert and key are set)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS key file")
	fs.BoolVar(&c.dev, "dev", false, "single dev node: temporary data, seeds a demo client and user, prints curl lines")
	fs.BoolVar(&c.leaveOnTerminate, "leave-on-terminate", false, "leave the cluster gracefully on SIGINT/SIGTERM")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := parseWithEnv(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
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
	if (c.bootstrapExpect > 1 || len(c.join) > 0) && c.clusterKey == "" {
		return errors.New("--cluster-key is required for a cluster (bootstrap-expect > 1 or --join); generate one with: head -c32 /dev/urandom | base64")
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	for name, d := range map[string]time.Duration{"access-token-ttl": c.accessTTL, "refresh-token-ttl": c.refreshTTL, "code-ttl": c.codeTTL} {
		if d <= 0 {
			return fmt.Errorf("--%s must be positive", name)
		}
	}
	return nil
}

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

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(c.logLevel, stderr)
	if err != nil {
		return err
	}
	key, err := c.key()
	if err != nil {
		return err
	}
	if c.dev {
		if err := c.devDefaults(); err != nil {
			return err
		}
		defer c.devCleanup()
	}
	if c.dataDir == "" {
		c.dataDir = filepath.Join("data", c.nodeID)
	}
	scheme := "http"
	if c.tlsCert != "" {
		scheme = "https"
	}
	if c.issuer == "" {
		c.issuer = scheme + "://" + c.httpAddr
	}

	// Listen before starting consensus so a taken port fails at once and
	// the address gossiped to peers is already being served.
	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr: %w", err)
	}
	defer ln.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	state := fsm.New()
	node, err := cluster.New(ctx, cluster.Config{
		NodeID:            c.nodeID,
		DataDir:           c.dataDir,
		RaftAddr:          c.raftAddr,
		GossipAddr:        c.gossipAddr,
		HTTPAddr:          advertisedHTTP(scheme, ln.Addr().String()),
		Join:              c.join,
		BootstrapExpect:   c.bootstrapExpect,
		ClusterKey:        key,
		DeadServerGrace:   c.deadServerGrace,
		PurgeInterval:     c.purgeInterval,
		SnapshotThreshold: c.snapshotThreshold,
		Version:           version,
		FSM:               state,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	api, err := httpapi.New(httpapi.Config{
		FSM:           state,
		Replicator:    node,
		Status:        func() any { return node.Status() },
		Leave:         node.Leave,
		NodeID:        c.nodeID,
		PeerURL:       node.PeerURL,
		Internal:      node.InternalHandler(),
		Issuer:        c.issuer,
		AdminToken:    c.adminToken,
		AccessTTL:     c.accessTTL,
		RefreshTTL:    c.refreshTTL,
		CodeTTL:       c.codeTTL,
		RefreshGrace:  c.refreshGrace,
		SecureCookies: scheme == "https",
		Logger:        log,
		Registry:      reg,
	})
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() {
		if c.tlsCert != "" {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			serveErr <- srv.ServeTLS(ln, c.tlsCert, c.tlsKey)
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	log.Info("tokend serving", "node_id", c.nodeID, "http", scheme+"://"+ln.Addr().String(),
		"raft", c.raftAddr, "gossip", c.gossipAddr, "data_dir", c.dataDir, "version", version)

	if c.dev {
		if err := c.seedDemo(ctx, node, scheme+"://"+ln.Addr().String(), stdout); err != nil {
			log.Error("seeding demo data failed", "err", err)
		}
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("http server stopped", "err", err)
	}
	return shutdown(srv, node, c.leaveOnTerminate, log)
}

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
func shutdown(srv *http.Server, node *cluster.Node, leave bool, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if leave {
		if err := node.Leave(ctx); err != nil {
			log.Warn("leaving the cluster failed", "err", err)
		}
	}
	httpErr := srv.Shutdown(ctx)
	if err := node.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if httpErr != nil && !errors.Is(httpErr, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", httpErr)
	}
	return nil
}
