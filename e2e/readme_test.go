package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's shell walkthrough lives in docs/examples/*.sh, which the
// README includes verbatim and TestReadmeExamplesRun runs, in this order,
// in one shell, as a reader pasting them would: an example cannot rot.
var readmeExamples = []string{"start.sh", "walkthrough.sh", "clock.sh", "notify.sh", "stop.sh"}

// repoRoot returns the directory of the module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the presenced module")
	}
	return filepath.Dir(gomod)
}

// Every example script is in the README verbatim (in a sh block) and run
// by TestReadmeExamplesRun; the README names no file a clone lacks, and
// links the documentation in docs/.
func TestReadmeIncludesExamples(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "docs", "examples", "*.sh"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/examples/*.sh: %v", err)
	}
	for _, f := range files {
		if !slices.Contains(readmeExamples, filepath.Base(f)) {
			t.Errorf("%s is not run by TestReadmeExamplesRun: add it to readmeExamples", f)
		}
		script, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, []byte("```sh\n"+string(script)+"```\n")) {
			t.Errorf("README.md does not include %s verbatim in a ```sh block", filepath.Base(f))
		}
	}
	for _, bad := range []string{"shared/", "../shared"} {
		if bytes.Contains(readme, []byte(bad)) {
			t.Errorf("README.md refers to %q, which a clone does not have", bad)
		}
	}
	for _, link := range []string{"docs/presence.md", "docs/emulator.md", "docs/beyond-graph.md", "LICENSE", "deploy/"} {
		if !bytes.Contains(readme, []byte("("+link)) {
			t.Errorf("README.md does not link %s", link)
		}
		if _, err := os.Stat(filepath.Join(root, link)); err != nil {
			t.Errorf("README.md links %s: %v", link, err)
		}
	}
}

// The README's walkthrough works as written: the scripts run in one shell
// against a real presenced they start and stop themselves (on a free port,
// with a temporary data directory, through the PRESENCED_ environment
// variables), and the notification example reaches a real TLS receiver.
func TestReadmeExamplesRun(t *testing.T) {
	for _, tool := range []string{"sh", "curl", "openssl", "date", "sed", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README examples need %s: %v", tool, err)
		}
	}
	root := repoRoot(t)
	dir := t.TempDir()
	// The README builds with `go build -o presenced ./cmd/presenced`; the
	// suite has built that binary already, so a stand-in `go` checks the
	// command and copies it.
	shim := filepath.Join(dir, "bin")
	if err := os.MkdirAll(shim, 0o755); err != nil {
		t.Fatal(err)
	}
	goShim := "#!/bin/sh\n" +
		"[ \"$*\" = \"build -o presenced ./cmd/presenced\" ] || { echo \"README: unexpected go $*\" >&2; exit 1; }\n" +
		"exec cp " + strconv.Quote(binary) + " presenced\n"
	if err := os.WriteFile(filepath.Join(shim, "go"), []byte(goShim), 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	receiver := newSink(t)

	// Before the last script stops the server, the shell waits (for at
	// most 30 s) until the receiver has the notification the one before
	// caused: delivery is asynchronous, and a stopped in-memory server
	// would never make it.
	delivered := filepath.Join(dir, "delivered")
	done := make(chan struct{})
	defer close(done)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for len(receiver.accepted()) == 0 && time.Now().Before(deadline) {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		_ = os.WriteFile(delivered, nil, 0o600)
	}()
	var script strings.Builder
	for i, name := range readmeExamples {
		if i == len(readmeExamples)-1 {
			script.WriteString("until [ -e " + strconv.Quote(delivered) + " ]; do sleep 0.05; done\n")
		}
		script.WriteString(". " + strconv.Quote(filepath.Join(root, "docs", "examples", name)) + "\n")
		if i == 0 { // whatever fails later, the server does not outlive the test
			script.WriteString("trap 'kill $PRESENCED_PID 2>/dev/null || true' EXIT\n")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-euc", script.String())
	cmd.Dir = dir
	cmd.Env = childEnv([]string{
		"PATH=" + shim + string(os.PathListSeparator) + os.Getenv("PATH"),
		"PRESENCED_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"PRESENCED_DATA=" + filepath.Join(dir, "data"),
		"PRESENCED_WEBHOOK_CA_FILE=" + webhookCA,
		"RECEIVER=" + receiver.URL + "/hook",
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README examples failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"availability":"Busy","activity":"InACall"`,
		`"activity":"AvailableInactive"`,
		`"availability":"Offline","activity":"Offline"`,
		`"content":"In the lab"`,
		`"nextChangeDateTime"`,
		`"clientState":"my-secret"`,
		"shutting down",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the README examples' output lacks %s:\n%s", want, out)
		}
	}
	items := receiver.waitItems(t, 1, time.Second)
	if items[0]["clientState"] != "my-secret" || items[0]["encryptedContent"] == nil {
		t.Errorf("the receiver got %v, want a rich notification with clientState my-secret", items[0])
	}
}
