package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tokend/tokend/gateway"
	"github.com/tokend/tokend/httpapi"
)

// validateAddrUsage is --validate-addr's help (package gateway says why
// it is a listener of its own).
const validateAddrUsage = "own fasthttp listener for gateways' GET /validate (also /healthz and /readyz), about 1.5x the requests per second of --http-addr's; the OAuth endpoints stay on --http-addr (empty: none)"

// listenValidate opens --validate-addr, or returns nil when it is unset.
func (c *serveConfig) listenValidate() (net.Listener, error) {
	if c.validateAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", c.validateAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on --validate-addr: %w", err)
	}
	return ln, nil
}

// startGateway serves api's /validate on ln (nil: nothing, a nil server)
// and reports the server's end on errs unless errs is full (a shutdown
// already under way).
func (c *serveConfig) startGateway(api *httpapi.Server, ln net.Listener, log *slog.Logger, errs chan<- error) (*gateway.Server, error) {
	if ln == nil {
		return nil, nil
	}
	g, err := gateway.New(gateway.Config{Validator: api.Validator(), Fallback: api.FastPathFallback(), Logger: log})
	if err != nil {
		return nil, err
	}
	go func() {
		var err error
		if c.tlsCert != "" {
			err = g.ServeTLS(ln, c.tlsCert, c.tlsKey)
		} else {
			err = g.Serve(ln)
		}
		if err == nil {
			err = errors.New("stopped")
		}
		select {
		case errs <- fmt.Errorf("--validate-addr: %w", err):
		default:
		}
	}()
	return g, nil
}

// stopGateway drains the fast listener briefly (its requests take
// microseconds), before the main listener and Raft stop.
func stopGateway(g *gateway.Server, log *slog.Logger) {
	if g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		log.Warn("--validate-addr did not drain", "err", err)
	}
}
