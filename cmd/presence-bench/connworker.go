package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/auth"
)

// The connections scenario holds more connections than one process may
// open files (ulimit -Hn): the tool runs itself again as worker processes
// (the hidden subcommand connWorkerCmd), each holding a share of the idle
// connections, and keeps the watchers and changers itself. A worker and
// the tool talk in JSON lines: the tool writes a connJob, then commands
// (connCommand) on the worker's stdin; the worker answers each step with
// a connReport on its stdout. The worker exits when its stdin ends (the
// tool closed it, or died) and, on Linux, when the tool dies.

// connWorkerCmd is the hidden subcommand of a connections worker.
const connWorkerCmd = "connections-worker"

// connShareEnv, when set, lowers the connections one process of the tool
// holds (by default the file-descriptor limit less fdMargin), so that a
// short run exercises the workers.
const connShareEnv = "PRESENCE_BENCH_CONNECTIONS_PER_PROCESS"

// Types of the lines between the tool and a worker.
const (
	// Tool to worker, after the job: dial now; say what was dropped.
	cmdGo     = "go"
	cmdStatus = "status"
	// Worker to tool: tokens minted, waiting for go; all dialed (with
	// the counts); the dropped count; a failure that ends the worker.
	reportPrepared  = "prepared"
	reportConnected = "connected"
	reportStatus    = "status"
	reportFailed    = "failed"
)

// connJob is the first line a worker reads: the connections [From, To) of
// the run to hold. Connection i is user i of userIDs(Seed, To) with a
// token of App signed by the key in KeyFile, dialed to URLs[i%len(URLs)]
// from source address i%sourceAddrs.
type connJob struct {
	URLs    []string `json:"urls"`
	KeyFile string   `json:"key_file"`
	App     string   `json:"app"`
	Seed    uint64   `json:"seed"`
	From    int      `json:"from"`
	To      int      `json:"to"`
}

// connCommand is a line the tool writes after the job.
type connCommand struct {
	Type string `json:"type"`
}

// connReport is a line a worker writes.
type connReport struct {
	Type string `json:"type"`
	// Of "connected": the connections made and failed, the first
	// failure, and the time from "go" to the last ready.
	Connected      int     `json:"connected,omitempty"`
	Errors         int     `json:"errors,omitempty"`
	FirstError     string  `json:"first_error,omitempty"`
	ConnectSeconds float64 `json:"connect_seconds,omitempty"`
	Retries        int64   `json:"retries,omitempty"`
	// Of "status" (and "connected"): the connections that ended since.
	Dropped int64 `json:"dropped,omitempty"`
	// Of "failed": why.
	Error string `json:"error,omitempty"`
}

// parseConnReport reads one line of a worker.
func parseConnReport(line []byte) (connReport, error) {
	var r connReport
	if err := json.Unmarshal(line, &r); err != nil {
		return connReport{}, fmt.Errorf("worker line %q: %w", truncate(line, 200), err)
	}
	switch r.Type {
	case reportPrepared, reportStatus:
	case reportConnected:
		if r.Connected < 0 || r.Errors < 0 || r.ConnectSeconds < 0 {
			return connReport{}, fmt.Errorf("worker line %q: negative counts", truncate(line, 200))
		}
	case reportFailed:
		if r.Error == "" {
			r.Error = "no reason given"
		}
	default:
		return connReport{}, fmt.Errorf("worker line %q: unknown type %q", truncate(line, 200), r.Type)
	}
	if r.Dropped < 0 || r.Retries < 0 {
		return connReport{}, fmt.Errorf("worker line %q: negative dropped count", truncate(line, 200))
	}
	return r, nil
}

// truncate returns at most n bytes of b, as text.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// connShare returns how many connections one process of the tool holds
// at most: the file-descriptor limit less fdMargin, or less if
// connShareEnv says so.
func connShare(limit uint64) (int, error) {
	share := int(limit) - fdMargin
	if v := os.Getenv(connShareEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < watchers+changedUsers {
			return 0, fmt.Errorf("%s=%q: want a number of connections of at least %d", connShareEnv, v, watchers+changedUsers)
		}
		share = min(share, n)
	}
	if share < watchers+changedUsers {
		return 0, fmt.Errorf("connections: the file-descriptor limit %d leaves %d connections to a process, fewer than the %d watchers and changers", limit, share, watchers+changedUsers)
	}
	return share, nil
}

// connPlan splits n connections over the tool and its workers, none
// holding more than share: the tool holds [0, Own), which takes in the
// watchers and changers, and Workers[k] the range [Workers[k][0],
// Workers[k][1]). The shares are as even as the tool's minimum allows.
type connPlan struct {
	Own     int
	Workers [][2]int
}

// planConnections splits n connections (at least the watchers and
// changers) over processes holding at most share each (at least as many).
func planConnections(n, share int) connPlan {
	procs := (n + share - 1) / share
	even := (n + procs - 1) / procs
	own := min(max(even, watchers+changedUsers), n)
	p := connPlan{Own: own}
	rest := n - own
	if rest == 0 {
		return p
	}
	workers := (rest + share - 1) / share
	from := own
	for k := range workers {
		size := rest / workers
		if k < rest%workers {
			size++
		}
		p.Workers = append(p.Workers, [2]int{from, from + size})
		from += size
	}
	return p
}

// mintConnTokens mints the delegated tokens of users, with 4 goroutines.
func mintConnTokens(ctx context.Context, issuer *auth.DevIssuer, app string, users []string) ([]string, error) {
	tokens := make([]string, len(users))
	err := parallel(ctx, 4, len(users), func(i int) error {
		var err error
		tokens[i], err = issuer.Mint(auth.TokenRequest{Tenant: devTenant, User: users[i], AppID: app,
			Scopes: []string{"Presence.ReadWrite", "Presence.Read.All"}, Issuer: devIssuer, TTL: tokenTTL})
		return err
	})
	return tokens, err
}

// runConnWorker is a connections worker: it reads its job from in, mints
// the tokens, says it is prepared, dials when told to go, and then holds
// the connections, answering status commands, until in ends.
func runConnWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(out)
	report := func(r connReport) error {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("connections worker: report: %w", err)
		}
		return nil
	}
	fail := func(err error) error {
		_ = report(connReport{Type: reportFailed, Error: err.Error()})
		return err
	}
	if !sc.Scan() {
		return fmt.Errorf("connections worker: no job on stdin: %w", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
	}
	var job connJob
	if err := json.Unmarshal(sc.Bytes(), &job); err != nil {
		return fail(fmt.Errorf("connections worker: job: %w", err))
	}
	if job.From < 0 || job.To <= job.From || len(job.URLs) == 0 {
		return fail(fmt.Errorf("connections worker: bad job %+v", job))
	}
	issuer, err := auth.LoadDevIssuer(job.KeyFile)
	if err != nil {
		return fail(err)
	}
	users := userIDs(job.Seed, job.To)[job.From:]
	tokens, err := mintConnTokens(ctx, issuer, job.App, users)
	if err != nil {
		return fail(err)
	}
	if err := report(connReport{Type: reportPrepared}); err != nil {
		return err
	}
	// Wait for go: the tool starts every process's dialing at once.
	for {
		if !sc.Scan() {
			return nil // the tool is gone
		}
		var c connCommand
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.Type == cmdGo {
			break
		}
	}
	dialers := sourceDialers()
	conns := make([]*rawConn, len(users))
	var dropped atomic.Int64
	var closing atomic.Bool
	var held sync.WaitGroup
	var failed connectErrors
	var retried atomic.Int64
	r := connReport{Type: reportConnected}
	start := time.Now()
	_ = parallel(ctx, connectWorkers, len(users), func(k int) error {
		i := job.From + k
		c, err := rawDialRetrying(ctx, dialers[i%sourceAddrs], job.URLs[i%len(job.URLs)], tokens[k], fmt.Sprintf("bench-%d", i), &retried)
		if err != nil {
			failed.add(err)
			return nil
		}
		conns[k] = c
		held.Go(func() {
			c.hold(nil)
			if !closing.Load() && ctx.Err() == nil {
				dropped.Add(1)
			}
		})
		return nil
	})
	r.ConnectSeconds = time.Since(start).Seconds()
	r.Errors, r.FirstError = failed.n, failed.first
	r.Connected = len(users) - r.Errors
	r.Dropped = dropped.Load()
	r.Retries = retried.Load()
	defer func() {
		closing.Store(true)
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		held.Wait()
	}()
	if err := report(r); err != nil {
		return err
	}
	for sc.Scan() {
		var c connCommand
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.Type == cmdStatus {
			if err := report(connReport{Type: reportStatus, Dropped: dropped.Load()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// connWorker is a worker process, seen from the tool.
type connWorker struct {
	job     connJob
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *tailBuffer
	reports chan connReport // closed when its stdout ends
	readErr error           // why stdout ended, once reports is closed
	waitErr error           // of Wait, once reports is closed
}

// workerStopWithin bounds how long a worker may take to close its
// connections and exit once its stdin is closed.
const workerStopWithin = 30 * time.Second

// startConnWorker runs this tool as a worker for job and sends it the job.
func startConnWorker(job connJob) (*connWorker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("connections worker: %w", err)
	}
	w := &connWorker{job: job, stderr: &tailBuffer{max: 16 << 10}, reports: make(chan connReport, 4)}
	w.cmd = exec.Command(self, connWorkerCmd)
	w.cmd.Env = os.Environ()
	w.cmd.Stderr = w.stderr
	dieWithParent(w.cmd)
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("connections worker: %w", err)
	}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("connections worker: %w", err)
	}
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("connections worker: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r, err := parseConnReport(sc.Bytes())
			if err != nil {
				w.readErr = err
				break
			}
			w.reports <- r
		}
		_, _ = io.Copy(io.Discard, stdout)
		if w.readErr == nil {
			w.readErr = sc.Err()
		}
		// After Wait, its stderr is complete.
		w.waitErr = w.cmd.Wait()
		close(w.reports)
	}()
	line, _ := json.Marshal(job)
	if err := w.writeLine(line); err != nil {
		_ = w.stop()
		return nil, err
	}
	return w, nil
}

// writeLine writes one line to the worker's stdin.
func (w *connWorker) writeLine(line []byte) error {
	if _, err := w.stdin.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("connections worker [%d, %d): write: %w\n%s", w.job.From, w.job.To, err, w.stderr.String())
	}
	return nil
}

// command sends the worker a command.
func (w *connWorker) command(typ string) error {
	line, _ := json.Marshal(connCommand{Type: typ})
	return w.writeLine(line)
}

// next waits for the worker's next report, which must be of type want.
func (w *connWorker) next(ctx context.Context, want string) (connReport, error) {
	select {
	case <-ctx.Done():
		return connReport{}, ctx.Err()
	case r, ok := <-w.reports:
		switch {
		case !ok:
			return connReport{}, fmt.Errorf("connections worker [%d, %d) ended (%v, %v) before %q:\n%s", w.job.From, w.job.To, w.readErr, w.waitErr, want, w.stderr.String())
		case r.Type == reportFailed:
			return connReport{}, fmt.Errorf("connections worker [%d, %d): %s", w.job.From, w.job.To, r.Error)
		case r.Type != want:
			return connReport{}, fmt.Errorf("connections worker [%d, %d): said %q, want %q", w.job.From, w.job.To, r.Type, want)
		}
		return r, nil
	}
}

// stop closes the worker's stdin, which ends it, and waits for it to
// exit, killing it after workerStopWithin. It returns how it exited.
func (w *connWorker) stop() error {
	_ = w.stdin.Close()
	timer := time.NewTimer(workerStopWithin)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-w.reports:
			if !ok {
				if w.waitErr != nil {
					return fmt.Errorf("connections worker [%d, %d): %w\n%s", w.job.From, w.job.To, w.waitErr, w.stderr.String())
				}
				return nil
			}
		case <-timer.C:
			_ = w.cmd.Process.Kill()
		}
	}
}
