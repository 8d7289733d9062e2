package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/connect"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/ticket"
)

// ConnectionConfig holds the timings of client connections.
type ConnectionConfig struct {
	Grace, Heartbeat, Timeout time.Duration
}

func parseConnectionConfig(grace, heartbeat, timeout string) (ConnectionConfig, error) {
	var c ConnectionConfig
	for _, f := range []struct {
		name, v string
		d       *time.Duration
	}{{"--connection-grace", grace, &c.Grace}, {"--connection-heartbeat", heartbeat, &c.Heartbeat}, {"--connection-timeout", timeout, &c.Timeout}} {
		d, err := time.ParseDuration(f.v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("%s: want a positive duration such as 30s, got %q", f.name, f.v)
		}
		*f.d = d
	}
	if c.Timeout <= c.Heartbeat {
		return c, fmt.Errorf("--connection-timeout (%v) must be longer than --connection-heartbeat (%v)", c.Timeout, c.Heartbeat)
	}
	return c, nil
}

// newConnections builds the client-connection endpoint (/presenced/connect
// and /presenced/tickets) and mounts it on mux. On Redis (rnode not nil)
// the sessions are held under one record per process in the nodes' shared
// registry of holders, named after the node.
func newConnections(cfg Config, svc *presence.Service, rnode *redisNode, verifier ticket.Authenticator, tickets *ticket.Issuer, api *graphapi.Server, logger *slog.Logger, reg prometheus.Registerer, mux *http.ServeMux) (*connect.Server, error) {
	var holders presence.Holders
	var advances presence.HolderAdvances
	if rnode != nil {
		holders = rnode.store.Holders()
		if cfg.TestHooks {
			advances = rnode.store.Holders()
		}
	}
	conns, err := connect.New(connect.Config{
		Holders:      holders,
		HolderPrefix: cfg.NodeID,
		Advances:     advances,
		Service:      svc,
		Auth:         verifier,
		Tickets:      tickets,
		WriteError:   api.WriteError,
		Grace:        cfg.Connections.Grace,
		Heartbeat:    cfg.Connections.Heartbeat,
		Timeout:      cfg.Connections.Timeout,
		Logger:       logger,
		Registerer:   reg,
	})
	if err != nil {
		return nil, fmt.Errorf("client connections: %w", err)
	}
	conns.Routes(mux)
	return conns, nil
}

// newTickets is the ticket issuer of the connection endpoint and the event
// stream: in memory on one node, in Redis when several nodes share it (a
// ticket bought through one node is redeemed through any).
func newTickets(svc *presence.Service, rnode *redisNode) *ticket.Issuer {
	var store ticket.Store = ticket.NewMemory(0)
	if rnode != nil {
		store = rnode.store.Tickets()
	}
	return &ticket.Issuer{Store: store, Clock: svc.Clock()}
}

// extendLeases is the test clock's hook: before the clock jumps to until,
// the sessions held by open connections are renewed past it, on every node
// (connect.Server.BeforeAdvance).
func extendLeases(conns *connect.Server) func(ctx context.Context, until time.Time) error {
	return func(ctx context.Context, until time.Time) error { return conns.BeforeAdvance(ctx, until) }
}
