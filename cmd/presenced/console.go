package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/console"
	"github.com/presenced/presenced/notify"
)

// minOperatorSecret is the shortest operator credential accepted.
const minOperatorSecret = 32

// consoleDeps is what the console is built from.
type consoleDeps struct {
	cfg        Config
	svc        *presence.Service
	store      presence.Store
	verifier   *auth.Verifier
	notifier   *notify.Notifier
	gatherer   prometheus.Gatherer
	writeError func(http.ResponseWriter, *http.Request, error)
	logger     *slog.Logger
}

// mountConsole registers the console (/presenced/console/ and its read
// endpoints) on mux and returns it, to be closed as the server shuts down.
func mountConsole(mux *http.ServeMux, d consoleDeps) (*console.Console, error) {
	ccfg := console.Config{
		Service: d.svc, Store: d.store, Auth: d.verifier, Subscriptions: d.notifier,
		TenantSubscriptions: d.notifier.TenantSubscriptions, Deliveries: d.notifier.Deliveries,
		Gatherer: d.gatherer, StoreKind: d.cfg.Store, TestHooks: d.cfg.TestHooks,
		DevTenant: devTenant, DevApp: devApp, WriteError: d.writeError, Logger: d.logger,
	}
	ccfg.Node = d.cfg.NodeID
	if d.cfg.ConsoleOperatorTokenFile != "" {
		raw, err := os.ReadFile(d.cfg.ConsoleOperatorTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--console-operator-token-file: %w", err)
		}
		secret := strings.TrimSpace(string(raw))
		if len(secret) < minOperatorSecret {
			return nil, fmt.Errorf("--console-operator-token-file: the secret in %s must be at least %d characters", d.cfg.ConsoleOperatorTokenFile, minOperatorSecret)
		}
		ccfg.OperatorSecret = secret
		d.logger.Info("console operator credential configured: its holder reads every tenant", "file", d.cfg.ConsoleOperatorTokenFile)
	}
	if d.cfg.JWKSURL == "" && d.cfg.JWKSFile == "" {
		dev, err := auth.NewDevIssuer(d.cfg.DevKeyFile)
		if err != nil {
			return nil, fmt.Errorf("development issuer: %w", err)
		}
		issuer, audience := devIssuer, auth.DefaultAudience
		if len(d.cfg.Issuers) > 0 {
			issuer = d.cfg.Issuers[0]
		}
		if len(d.cfg.Audiences) > 0 {
			audience = d.cfg.Audiences[0]
		}
		ccfg.DevAuth = true
		ccfg.MintDevToken = func(r console.DevTokenRequest) (string, error) {
			tok, err := dev.Mint(auth.TokenRequest{Tenant: r.Tenant, AppID: r.AppID, User: r.User, Scopes: r.Scopes,
				Roles: r.Roles, Issuer: issuer, Audience: audience, TTL: r.TTL})
			if err != nil {
				return "", errors.Join(presence.Errorf(presence.CodeBadRequest, "The token could not be minted."), err)
			}
			return tok, nil
		}
		d.logger.Warn("development auth mode: the console at /presenced/console/ mints development tokens for anyone who can reach it (POST /presenced/dev/token)")
	}
	c := console.New(ccfg)
	c.Register(mux)
	return c, nil
}
