// Command presenced serves the Microsoft Graph presence API.
//
//	presenced [flags]          serve (see --help for flags and their environment variables)
//	presenced token [flags]    print a development bearer token
//	presenced repair [--data DIR]  drop damaged records so that presenced starts again
//	presenced version          print the version and commit
//
// It stops on SIGINT or SIGTERM: it stops accepting, finishes in-flight
// requests and closes the store. A second signal ends it at once.
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

	_ "time/tzdata" // status-message expiries name IANA zones; do not depend on the host's database
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// Once the first signal started the shutdown, a second one gets the
		// default action: the process ends at once.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		stop()
		os.Exit(1)
	}
}

// run is the whole program: it parses args and the environment, and serves
// until ctx is done, or runs a subcommand.
// Asking for help (-h, --help, help) prints the usage on stdout and is not
// an error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "token":
			return helpIsNoError(runToken(args[2:], getenv, stdout, stderr))
		case "version", "--version", "-version":
			return runVersion(args[2:], stdout)
		case "repair":
			return helpIsNoError(runRepair(ctx, args[2:], getenv, stdout, stderr))
		case "help":
			args = []string{args[0], "--help"}
		}
	}
	cfg, err := parseConfig(args[1:], getenv, stdout, stderr)
	if err != nil {
		return helpIsNoError(err)
	}
	return serve(ctx, cfg, stdout, stderr)
}

// helpIsNoError turns the flag package's "help requested" into success.
func helpIsNoError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
