// Command presenced serves the Microsoft Graph presence API.
//
//	presenced [flags]          serve (see -h for flags and their environment variables)
//	presenced token [flags]    print a development bearer token
//	presenced repair [--data DIR]  drop damaged records so that presenced starts again
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "time/tzdata" // status-message expiries name IANA zones; do not depend on the host's database
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		stop()
		os.Exit(1)
	}
}

// run is the whole program: it parses args and the environment, and serves
// until ctx is done, or runs a subcommand.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "token" {
		return runToken(args[2:], getenv, stdout, stderr)
	}
	if len(args) > 1 && args[1] == "repair" {
		return runRepair(ctx, args[2:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, stderr)
}
