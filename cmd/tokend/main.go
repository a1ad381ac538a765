// Command tokend is an OAuth 2.0 authorization server and token store
// replicated with Raft.
//
//	tokend serve [flags]          run a node (tokend serve --dev for a demo)
//	tokend client|user|revoke ... manage a running node over its admin API
//	tokend cluster status|leave   inspect or leave the cluster
//	tokend keys list|rotate       the JWT signing keys
//	tokend snapshot save|inspect|restore  back up or restore the whole state
//	tokend version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `tokend — OAuth 2.0 authorization server replicated with Raft

Usage:
  tokend serve [flags]                      run a node (--dev: a ready demo node)
  tokend client create|list|get|update|delete|rotate-secret [flags]
  tokend user create|update|delete|set-password|forget-consent [flags]
  tokend revoke --client ID | --user TENANT/USERNAME
  tokend cluster status|leave
  tokend keys list|rotate                   signing keys of ID tokens and JWT access tokens
  tokend snapshot save FILE | inspect FILE | restore FILE [--force]
  tokend recover --peers ID=HOST:PORT[,...] lost quorum: reconfigure a stopped survivor
  tokend version

Every flag also reads TOKEND_<FLAG_IN_UPPER_SNAKE> from the environment;
flags win. Run "tokend <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokend:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "client", "user", "revoke", "cluster", "keys":
		return adminCommand(ctx, cmd, rest, stdout, stderr)
	case "snapshot":
		return snapshotCommand(ctx, rest, stdout, stderr) // snapshotcli.go
	case "recover":
		return recoverCmd(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "tokend", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
