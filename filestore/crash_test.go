package filestore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// crashDirEnv names the directory TestCrashChild writes to; it is set only
// in the child process that TestCrash starts.
const crashDirEnv = "FILESTORE_CRASH_TEST_DIR"

const (
	crashWorkers = 16
	crashKeys    = 4 // per worker
)

// TestCrashChild is the child process of TestCrash: it opens the store and
// increments counters from many goroutines until it is killed, printing
// "key seq" for each Update only after Update returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run as a child process by TestCrash")
	}
	s, err := Open(context.Background(), dir, Options{CompactBytes: 32 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := w*crashKeys + i%crashKeys
				_, after, err := s.Update(context.Background(), key(k), func(st *presence.State) error {
					st.Seq++
					st.Due = time.Unix(int64(st.Seq), 0)
					return nil
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "update:", err)
					os.Exit(2)
				}
				// One Write per line: lines from goroutines never interleave.
				os.Stdout.WriteString(fmt.Sprintf("%d %d\n", k, after.Seq))
			}
		})
	}
	wg.Wait()
}

// TestCrash kills a process that is writing to the store with SIGKILL at a
// random moment, several times over the same directory, and checks after
// each crash that every acknowledged write survived.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	acked := make(map[int]uint64) // the highest acknowledged Seq of each key
	const rounds = 4
	for round := range rounds {
		killAt := 300 + rand.IntN(1500)
		lines := runCrashChild(t, dir, killAt, func(k int, seq uint64) {
			acked[k] = max(acked[k], seq)
		})
		// Odd rounds reopen without compacting, so the next child replays
		// the log (and its torn tail) itself.
		opts := Options{}
		if round%2 == 1 {
			opts.CompactBytes = -1
		}
		s := mustOpen(t, dir, opts)
		got := seqs(t, s, crashWorkers*crashKeys)
		lost := 0
		// The keys written so far, all due (every write sets a Due). Not
		// always all of them: with one P, a few workers can make hundreds
		// of writes before the others first run.
		var written []presence.Key
		for k := range got {
			if got[k] > 0 {
				written = append(written, key(k))
			}
			// Each key has one writer, so at most one unacknowledged
			// increment can have landed on top of the acknowledged ones.
			if got[k] < acked[k] {
				lost++
				t.Errorf("round %d: key %d has Seq %d, but %d was acknowledged", round, k, got[k], acked[k])
			}
			if got[k] > acked[k]+1 {
				t.Errorf("round %d: key %d has Seq %d, acknowledged only %d", round, k, got[k], acked[k])
			}
			acked[k] = got[k]
		}
		due, err := s.Due(context.Background(), time.Unix(1<<40, 0), 1000)
		slices.SortFunc(due, func(a, b presence.Key) int { return strings.Compare(a.User, b.User) })
		slices.SortFunc(written, func(a, b presence.Key) int { return strings.Compare(a.User, b.User) })
		if err != nil || !slices.Equal(due, written) {
			t.Errorf("round %d: Due returned %d keys (%v), want the %d written", round, len(due), err, len(written))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acknowledged writes; %d lost", round, lines, lost)
	}
}

// runCrashChild runs TestCrashChild on dir, passes each acknowledged write
// to ack, kills the child with SIGKILL after killAt of them, and returns
// how many it read in all.
func runCrashChild(t *testing.T, dir string, killAt int, ack func(k int, seq uint64)) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	sc := bufio.NewScanner(stdout)
	lines := 0
	for sc.Scan() {
		var k int
		var seq uint64
		if _, err := fmt.Sscanf(sc.Text(), "%d %d", &k, &seq); err != nil {
			continue // not ours (the child is a test binary)
		}
		ack(k, seq)
		lines++
		if lines == killAt {
			// Lines already in the pipe were acknowledged too: keep reading.
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	err = cmd.Wait()
	if lines < killAt {
		t.Fatalf("child stopped after %d writes (%v); stderr:\n%s", lines, err, stderr.String())
	}
	return lines
}
