package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"path/filepath"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/auth"
)

// runToken prints a bearer token signed by the development key, which a
// presenced in development auth mode with the same --data accepts. It
// never creates a key: a key it made up would sign tokens no running
// presenced accepts, so a data directory without one is an error that says
// where it looked. It says on stderr which key it signed with.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presenced token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
		}
	}
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
		fmt.Fprintln(fs.Output(), "usage: presenced token [flags]\n\n"+
			"Prints a bearer token for a presenced running in development auth mode, signed\n"+
			"with the development key in that server's data directory (--data, default\n"+
			"./presenced-data relative to the current directory). Start the server first:\n"+
			"it creates the key.\n\nFlags:")
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
	if abs, err := filepath.Abs(devKey); err == nil {
		devKey = abs
	}
	dev, err := auth.LoadDevIssuer(devKey)
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("no development key at %s: start presenced in development auth mode with this data directory first "+
			"(it creates the key), or name the running server's directory with --data (or $PRESENCED_DATA) or its key with --dev-key", devKey)
	}
	if err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	fmt.Fprintln(stderr, "presenced token: signed with the development key", devKey)
	tok, err := dev.Mint(req)
	if err != nil {
		return fmt.Errorf("mint: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
