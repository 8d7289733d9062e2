package durability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startLogged is start, keeping the server's log for the test to read.
func startLogged(t *testing.T, bin, data, addr string) (*server, *syncBuf) {
	t.Helper()
	cmd := exec.Command(bin, "--addr", addr, "--data", data, "--rate-limit", "0", "--log-level", "warn")
	logs := &syncBuf{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, base: "http://" + addr}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if code := waitReady(s, 30*time.Second); code != http.StatusOK {
		t.Fatalf("presenced did not become ready (last /readyz %d):\n%s", code, logs.String())
	}
	return s, logs
}

// waitReady polls /readyz until it answers 200 or within passes, and
// returns the last status (0: no answer).
func waitReady(s *server, within time.Duration) int {
	deadline := time.Now().Add(within)
	last := 0
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			last = resp.StatusCode
			if last == http.StatusOK {
				return last
			}
		}
		if time.Now().After(deadline) {
			return last
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for behaviour
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func userID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1) }

// setMessage sets user's status message to text and returns the status
// and the response.
func setMessage(t *testing.T, s *server, tok, user, text string) (int, http.Header, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"statusMessage": map[string]any{"message": map[string]any{"content": text, "contentType": "text"}},
	})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1.0/users/"+user+"/presence/setStatusMessage", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, out.Bytes()
}

// messages reads the status messages of users (at most 650).
func messages(t *testing.T, s *server, tok string, users []string) map[string]string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"ids": users})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1.0/communications/getPresencesByUserId", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Value []struct {
			ID            string `json:"id"`
			StatusMessage *struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"statusMessage"`
		} `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Value) != len(users) {
		t.Fatalf("read back: status %d, %v, %d values", resp.StatusCode, err, len(out.Value))
	}
	m := map[string]string{}
	for _, v := range out.Value {
		if v.StatusMessage != nil {
			m[v.ID] = v.StatusMessage.Message.Content
		}
	}
	return m
}

func kill9(s *server) {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

// A flipped byte in the last MiB of a log the real binary wrote, with
// acknowledged records after it, makes presenced refuse to start, naming
// the file and the offset; `presenced repair` then brings back every
// other user's acknowledged value.
func TestFlippedByteRefusesToStartAndRepairKeepsTheRest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server")
	}
	bin := build(t)
	data := t.TempDir()
	addr := freeAddr(t)
	srv, _ := startLogged(t, bin, data, addr)
	tok := token(t, bin, data)

	const users, rounds = 400, 3
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for round := 1; round <= rounds; round++ {
				for i := w; i < users; i += 8 {
					if code, _, body := setMessage(t, srv, tok, userID(i), strconv.Itoa(round)); code != http.StatusOK {
						t.Errorf("write: %d %s", code, body)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	kill9(srv) // no compaction at exit: the log stays as written

	segs, _ := filepath.Glob(filepath.Join(data, "*.log"))
	var seg string
	var size, records int64
	for _, p := range segs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			seg, size = p, fi.Size()
		}
	}
	// The records end where the zeros written ahead of them begin.
	if b, err := os.ReadFile(seg); err == nil {
		records = int64(len(bytes.TrimRight(b, "\x00")))
	}
	if records < 30_000 {
		t.Fatalf("log %s of %d bytes of records: too short for the test", seg, records)
	}
	off := records - records/3 // in the last MiB, a third of the records after it
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	_, _ = f.ReadAt(b, off)
	b[0] ^= 0x01
	_, _ = f.WriteAt(b, off)
	f.Close()

	// presenced refuses to start, naming the file and an offset.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--addr", addr, "--data", data, "--log-level", "warn").CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("presenced started on a damaged log (err %v):\n%s", err, out)
	}
	if !strings.Contains(string(out), filepath.Base(seg)) || !strings.Contains(string(out), "at offset ") || !strings.Contains(string(out), "presenced repair") {
		t.Fatalf("the refusal names no file, offset or remedy:\n%s", out)
	}
	if fi, _ := os.Stat(seg); fi.Size() != size {
		t.Fatalf("the refused start changed the log: %d bytes, was %d", fi.Size(), size)
	}

	out, err = exec.Command(bin, "repair", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, out)
	}
	t.Logf("repair said:\n%s", out)

	srv, _ = startLogged(t, bin, data, addr)
	defer kill9(srv)
	ids := make([]string, users)
	for i := range ids {
		ids[i] = userID(i)
	}
	got := messages(t, srv, tok, ids)
	var behind []string
	for _, id := range ids {
		if got[id] != strconv.Itoa(rounds) {
			behind = append(behind, id+"="+got[id])
		}
	}
	// The damaged record was one write of one user: if it was that
	// user's last, the user is back at the write before it.
	if len(behind) > 1 || (len(behind) == 1 && !strings.HasSuffix(behind[0], "="+strconv.Itoa(rounds-1))) {
		t.Fatalf("after repair, users not at their acknowledged value: %v", behind)
	}
}

// A full disk is an outage, not a corruption. The file-size limit
// (RLIMIT_FSIZE, set on the running server with prlimit(2), which needs no
// privilege) makes the log's writes fail with EFBIG, as a full disk fails
// them with ENOSPC: the same path in the store. Writes answer 503 with
// Retry-After in Graph's envelope, /readyz is not ready, the log holds a
// few error lines rather than one a write, and once the limit is lifted
// presenced is ready again without a restart; every acknowledged write
// survives kill -9.
func TestFullDiskIsAnOutageNotACorruption(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server")
	}
	bin := build(t)
	data := t.TempDir()
	addr := freeAddr(t)
	srv, logs := startLogged(t, bin, data, addr)
	tok := token(t, bin, data)
	const users = 20
	acked := map[string]string{}
	for i := range users {
		if code, _, body := setMessage(t, srv, tok, userID(i), "before"); code != http.StatusOK {
			t.Fatalf("write: %d %s", code, body)
		}
		acked[userID(i)] = "before"
	}
	// The log's records end here; the file goes on with zeros written
	// ahead of them, which a limit below the file's size leaves in place
	// and writes over until they pass the limit.
	size := logBytes(t, srv)
	pid := srv.cmd.Process.Pid
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	limit := unix.Rlimit{Cur: uint64(size) + 2000, Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &limit, nil); err != nil {
		t.Skipf("prlimit: %v", err)
	}

	// Write until the disk is "full", then some more.
	failed := 0
	for n := 0; n < 500 && failed < 100; n++ {
		user := userID(n % users)
		text := "during-" + strconv.Itoa(n)
		code, h, body := setMessage(t, srv, tok, user, text)
		switch code {
		case http.StatusOK:
			if failed > 0 {
				t.Fatalf("a write succeeded on a full disk: %s", body)
			}
			acked[user] = text
		case http.StatusServiceUnavailable:
			failed++
			var env struct {
				Error struct {
					Code, Message string
					InnerError    map[string]any `json:"innerError"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.Error.Code == "" || env.Error.InnerError["request-id"] == nil {
				t.Fatalf("503 not in Graph's envelope: %s", body)
			}
			if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("503 without Retry-After: %q", h.Get("Retry-After"))
			}
		default:
			t.Fatalf("write on a full disk: %d %s", code, body)
		}
	}
	if failed == 0 {
		t.Fatal("no write failed under the file-size limit")
	}
	resp, err := http.Get(srv.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz answers %d while the store cannot write", resp.StatusCode)
	}
	if m := metricsText(t, srv); !strings.Contains(m, "\npresenced_store_write_failing 1\n") {
		t.Errorf("presenced_store_write_failing is not 1 while the store cannot write")
	}
	if n := strings.Count(logs.String(), "cannot be written"); n < 1 || n > 5 {
		t.Errorf("%d error lines for %d failed writes, want 1-5:\n%s", n, failed, logs.String())
	}
	if n := strings.Count(logs.String(), "\n"); n > 40 {
		t.Errorf("%d log lines for %d failed writes: the log is not rate-limited:\n%s", n, failed, logs.String())
	}

	// Space is freed: ready again without a restart, and writes succeed.
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil); err != nil {
		t.Fatal(err)
	}
	if code := waitReady(srv, 20*time.Second); code != http.StatusOK {
		t.Fatalf("/readyz still %d after the limit was lifted:\n%s", code, logs.String())
	}
	for i := range users {
		if code, _, body := setMessage(t, srv, tok, userID(i), "after"); code != http.StatusOK {
			t.Fatalf("write after recovery: %d %s", code, body)
		}
		acked[userID(i)] = "after"
	}
	if code, _, body := setMessage(t, srv, tok, userID(0), "last"); code != http.StatusOK {
		t.Fatalf("write after recovery: %d %s", code, body)
	}
	acked[userID(0)] = "last"
	if m := metricsText(t, srv); !strings.Contains(m, "\npresenced_store_write_failing 0\n") {
		t.Errorf("presenced_store_write_failing is not 0 after recovery")
	}
	kill9(srv)

	srv, _ = startLogged(t, bin, data, addr)
	defer kill9(srv)
	ids := make([]string, users)
	for i := range ids {
		ids[i] = userID(i)
	}
	got := messages(t, srv, tok, ids)
	for _, id := range ids {
		if got[id] != acked[id] {
			t.Errorf("user %s: %q after restart, acknowledged %q", id, got[id], acked[id])
		}
	}
}

func metricsText(t *testing.T, s *server) string {
	t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

// logBytes reads the size of the records in the current log segment from
// presenced_store_log_bytes.
func logBytes(t *testing.T, srv *server) int64 {
	t.Helper()
	for line := range strings.SplitSeq(metricsText(t, srv), "\n") {
		if v, ok := strings.CutPrefix(line, "presenced_store_log_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("presenced_store_log_bytes: %q", v)
			}
			return int64(f)
		}
	}
	t.Fatal("no presenced_store_log_bytes in /metrics")
	return 0
}
