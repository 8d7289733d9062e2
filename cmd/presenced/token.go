package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/auth"
)

// runToken prints a bearer token signed by the development key, which a
// presenced in development auth mode with the same --data accepts.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presenced token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := getenv("PRESENCED_DATA")
	if data == "" {
		data = "./presenced-data"
	}
	devKey := getenv("PRESENCED_DEV_KEY")
	var (
		user   = fs.String("user", "", "signed-in user's object id: makes a delegated token (omit for an application token)")
		app    = fs.String("app", devApp, "calling application's client id (the sessionId of setPresence)")
		tenant = fs.String("tenant", devTenant, "tenant id")
		scopes = fs.String("scopes", "Presence.Read.All Presence.ReadWrite", "delegated scopes, space- or comma-separated (with --user)")
		roles  = fs.String("roles", "Presence.ReadWrite.All", "application roles, space- or comma-separated (without --user)")
		ttl    = fs.Duration("ttl", time.Hour, "lifetime of the token")
		issuer = fs.String("issuer", devIssuer, "iss claim")
		aud    = fs.String("audience", auth.DefaultAudience, "aud claim")
	)
	fs.StringVar(&data, "data", data, "data directory holding the development key ($PRESENCED_DATA)")
	fs.StringVar(&devKey, "dev-key", devKey, "development signing key (default: <data>/dev-signing-key.pem) ($PRESENCED_DEV_KEY)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: presenced token [flags]\n\nPrints a bearer token for a presenced running in development auth mode.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if devKey == "" {
		devKey = data + "/dev-signing-key.pem"
	}
	req := auth.TokenRequest{Tenant: *tenant, AppID: *app, Issuer: *issuer, Audience: *aud, TTL: *ttl}
	for name, v := range map[string]string{"tenant": *tenant, "app": *app} {
		if _, ok := presence.CanonicalGUID(v); !ok {
			return fmt.Errorf("--%s: %q is not a GUID", name, v)
		}
	}
	if *user != "" {
		if _, ok := presence.CanonicalGUID(*user); !ok {
			return fmt.Errorf("--user: %q is not a GUID", *user)
		}
		req.User = *user
		req.Scopes = strings.Fields(strings.ReplaceAll(*scopes, ",", " "))
	} else {
		req.Roles = strings.Fields(strings.ReplaceAll(*roles, ",", " "))
	}
	dev, err := auth.NewDevIssuer(devKey)
	if err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	tok, err := dev.Mint(req)
	if err != nil {
		return fmt.Errorf("mint: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
