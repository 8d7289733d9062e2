package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/presenced/presenced/filestore"
	"github.com/presenced/presenced/notify"
)

// runRepair mends a data directory that presenced refuses to open because
// a record is damaged: it keeps every valid record on both sides of the
// damage, keeps each original beside its repaired copy, and says what it
// dropped. presenced must not be running on the directory.
func runRepair(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presenced repair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := getenv("PRESENCED_DATA")
	if data == "" {
		data = "./presenced-data"
	}
	fs.StringVar(&data, "data", data, "data directory to repair ($PRESENCED_DATA)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: presenced repair [--data DIR]\n\nDrops damaged records from the store and the subscription file, keeping every\nvalid record, so that presenced starts again. Stop presenced first.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("repair: unexpected argument %q", fs.Arg(0))
	}
	files, err := filestore.Repair(ctx, data)
	for _, f := range files {
		if len(f.Damaged) == 0 && f.Backup == "" {
			fmt.Fprintf(stdout, "%s: %d records, intact\n", f.Name, f.Records)
			continue
		}
		for _, d := range f.Damaged {
			fmt.Fprintf(stdout, "%s: dropped %d damaged bytes at offset %d\n", f.Name, d.Length, d.Offset)
		}
		fmt.Fprintf(stdout, "%s: rewritten with its %d valid records; the original is kept as %s\n", f.Name, f.Records, f.Backup)
	}
	if err != nil {
		return fmt.Errorf("repair %s: %w", data, err)
	}
	sub, err := notify.RepairSubscriptions(filepath.Join(data, "notify"))
	if err != nil {
		return fmt.Errorf("repair %s: %w", data, err)
	}
	if sub.Dropped > 0 {
		fmt.Fprintf(stdout, "%s: dropped %d damaged lines, kept %d; the original is kept as %s\n", sub.Name, sub.Dropped, sub.Kept, sub.Backup)
	} else if sub.Name != "" {
		fmt.Fprintf(stdout, "%s: %d lines, intact\n", sub.Name, sub.Kept)
	}
	fmt.Fprintln(stdout, "repair done")
	return nil
}
