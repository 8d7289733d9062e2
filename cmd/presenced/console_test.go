package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConsoleOperatorSecretIsChecked(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("too-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{short: "at least 32 characters", filepath.Join(dir, "missing"): "--console-operator-token-file"} {
		err := run(context.Background(), []string{"presenced", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--store", "memory",
			"--console-operator-token-file", file}, env(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("operator file %s: %v, want an error saying %q", file, err, want)
		}
	}
}

// TestConsoleMintsDevelopmentTokens: in development auth mode the page's
// token endpoint mints tokens the server accepts, and the start-up log
// names the console.
func TestConsoleMintsDevelopmentTokens(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"presenced", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--store", "memory"}, env(nil), stdoutW, &stderr)
		stdoutW.Close()
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("no start-up line: %v\n%s", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	base := strings.TrimSpace(strings.TrimPrefix(line, "presenced listening on "))
	if !strings.Contains(stderr.String(), `"console":"`+base+`/presenced/console/"`) {
		t.Errorf("the start-up log does not name the console:\n%s", stderr.String())
	}

	user := "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	res, err := http.Post(base+"/presenced/dev/token", "application/json", strings.NewReader(`{"user":"`+user+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var minted struct {
		AccessToken string `json:"accessToken"`
		Tenant      string `json:"tenant"`
	}
	err = json.NewDecoder(res.Body).Decode(&minted)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || minted.Tenant != devTenant {
		t.Fatalf("POST /presenced/dev/token: %d %+v %v", res.StatusCode, minted, err)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/presenced/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+minted.AccessToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"user":"`+user+`"`) || !strings.Contains(string(body), `"mayReadTenant":true`) {
		t.Errorf("whoami with the minted token: %d %s", res.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	http.DefaultClient.CloseIdleConnections()
}
