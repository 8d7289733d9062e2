package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFlagsAndEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c Config)
		err   string
	}{
		{"defaults", nil, nil, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:8080" || c.DataDir != "./presenced-data" || c.RateLimit != 1500 || c.TestHooks || c.Store != "file" {
				t.Errorf("defaults: %+v", c)
			}
			if c.DevKeyFile != "./presenced-data/dev-signing-key.pem" {
				t.Errorf("dev key %q", c.DevKeyFile)
			}
		}, ""},
		{"environment", nil, map[string]string{"PRESENCED_ADDR": ":9", "PRESENCED_RATE_LIMIT": "0", "PRESENCED_TEST_HOOKS": "1",
			"PRESENCED_ISSUER": "a, b", "PRESENCED_AUDIENCE": "x"}, func(t *testing.T, c Config) {
			if c.Addr != ":9" || c.RateLimit != 0 || !c.TestHooks || strings.Join(c.Issuers, "|") != "a|b" || strings.Join(c.Audiences, "|") != "x" {
				t.Errorf("env: %+v", c)
			}
		}, ""},
		{"flag beats environment", []string{"--addr", ":7", "--test-hooks=false", "--rate-limit", "5"},
			map[string]string{"PRESENCED_ADDR": ":9", "PRESENCED_TEST_HOOKS": "1"}, func(t *testing.T, c Config) {
				if c.Addr != ":7" || c.TestHooks || c.RateLimit != 5 {
					t.Errorf("flags: %+v", c)
				}
			}, ""},
		{"notification defaults", nil, nil, func(t *testing.T, c Config) {
			if c.MaxSubscriptionLifetime != time.Hour || c.ValidationTimeout != 10*time.Second || c.AllowAppSubscriptions || c.PprofAddr != "" {
				t.Errorf("defaults: %+v", c)
			}
		}, ""},
		{"notification environment", nil, map[string]string{"PRESENCED_MAX_SUBSCRIPTION_LIFETIME": "24h", "PRESENCED_VALIDATION_TIMEOUT": "2s",
			"PRESENCED_ALLOW_APP_SUBSCRIPTIONS": "true", "PRESENCED_PPROF": "127.0.0.1:0"}, func(t *testing.T, c Config) {
			if c.MaxSubscriptionLifetime != 24*time.Hour || c.ValidationTimeout != 2*time.Second || !c.AllowAppSubscriptions || c.PprofAddr != "127.0.0.1:0" {
				t.Errorf("env: %+v", c)
			}
		}, ""},
		{"notification flags beat environment", []string{"--max-subscription-lifetime", "90m", "--allow-app-subscriptions=false"},
			map[string]string{"PRESENCED_MAX_SUBSCRIPTION_LIFETIME": "24h", "PRESENCED_ALLOW_APP_SUBSCRIPTIONS": "1"}, func(t *testing.T, c Config) {
				if c.MaxSubscriptionLifetime != 90*time.Minute || c.AllowAppSubscriptions {
					t.Errorf("flags: %+v", c)
				}
			}, ""},
		{"webhooks to private addresses: off by default", nil, nil, func(t *testing.T, c Config) {
			if c.WebhookAllowPrivate {
				t.Error("allowed by default")
			}
		}, ""},
		{"webhooks to private addresses: on with --test-hooks", []string{"--test-hooks"}, nil, func(t *testing.T, c Config) {
			if !c.WebhookAllowPrivate {
				t.Error("not allowed with --test-hooks")
			}
		}, ""},
		{"webhooks to private addresses: off when given false", []string{"--test-hooks", "--webhook-allow-private=false"}, nil, func(t *testing.T, c Config) {
			if c.WebhookAllowPrivate {
				t.Error("allowed")
			}
		}, ""},
		{"webhooks to private addresses: environment", nil, map[string]string{"PRESENCED_TEST_HOOKS": "1", "PRESENCED_WEBHOOK_ALLOW_PRIVATE": "0"}, func(t *testing.T, c Config) {
			if c.WebhookAllowPrivate {
				t.Error("allowed")
			}
		}, ""},
		{"webhooks to private addresses: flag", []string{"--webhook-allow-private"}, nil, func(t *testing.T, c Config) {
			if !c.WebhookAllowPrivate {
				t.Error("not allowed")
			}
		}, ""},
		{"bad allow-private env", nil, map[string]string{"PRESENCED_WEBHOOK_ALLOW_PRIVATE": "maybe"}, nil, "PRESENCED_WEBHOOK_ALLOW_PRIVATE"},
		{"stream caps", []string{"--max-streams", "7"}, map[string]string{"PRESENCED_MAX_STREAMS_PER_APP": "3"}, func(t *testing.T, c Config) {
			if c.MaxStreams != 7 || c.MaxStreamsPerApp != 3 {
				t.Errorf("caps %d %d", c.MaxStreams, c.MaxStreamsPerApp)
			}
		}, ""},
		{"stream cap defaults", nil, nil, func(t *testing.T, c Config) {
			if c.MaxStreams != 10000 || c.MaxStreamsPerApp != 1000 {
				t.Errorf("caps %d %d", c.MaxStreams, c.MaxStreamsPerApp)
			}
		}, ""},
		{"bad stream cap", []string{"--max-streams-per-app", "0"}, nil, nil, "--max-streams-per-app"},
		{"lifetime under a minute", []string{"--max-subscription-lifetime", "30s"}, nil, nil, "--max-subscription-lifetime"},
		{"bad validation timeout", []string{"--validation-timeout", "0s"}, nil, nil, "--validation-timeout"},
		{"validation timeout beyond the write timeout", []string{"--validation-timeout", "31s"}, nil, nil, "exceeds the server's write timeout"},
		{"validation timeout at the write timeout", []string{"--validation-timeout", "30s"}, nil, func(t *testing.T, c Config) {
			if c.ValidationTimeout != writeTimeout {
				t.Errorf("validation timeout %s", c.ValidationTimeout)
			}
		}, ""},
		{"connections and metrics address", nil, map[string]string{"PRESENCED_MAX_CONNECTIONS": "7", "PRESENCED_METRICS_ADDR": "127.0.0.1:0"}, func(t *testing.T, c Config) {
			if c.MaxConnections != 7 || c.MetricsAddr != "127.0.0.1:0" {
				t.Errorf("%+v", c)
			}
		}, ""},
		{"default connections", nil, nil, func(t *testing.T, c Config) {
			if c.MaxConnections != defaultMaxConnections || c.MetricsAddr != "" {
				t.Errorf("%+v", c)
			}
		}, ""},
		{"bad connections", []string{"--max-connections", "0"}, nil, nil, "--max-connections"},
		{"bad app subscriptions env", nil, map[string]string{"PRESENCED_ALLOW_APP_SUBSCRIPTIONS": "maybe"}, nil, "PRESENCED_ALLOW_APP_SUBSCRIPTIONS"},
		{"bad rate", []string{"--rate-limit", "-1"}, nil, nil, "--rate-limit"},
		{"bad store", []string{"--store", "bolt"}, nil, nil, "--store"},
		{"bad hooks env", nil, map[string]string{"PRESENCED_TEST_HOOKS": "maybe"}, nil, "PRESENCED_TEST_HOOKS"},
		{"stray argument", []string{"serve"}, nil, nil, "unexpected argument"},
		{"cors origins", nil, map[string]string{"PRESENCED_CORS_ORIGINS": "https://a.example, http://localhost:5173"}, func(t *testing.T, c Config) {
			if strings.Join(c.CORSOrigins, "|") != "https://a.example|http://localhost:5173" {
				t.Errorf("cors: %q", c.CORSOrigins)
			}
		}, ""},
		{"cors off by default", nil, nil, func(t *testing.T, c Config) {
			if len(c.CORSOrigins) != 0 {
				t.Errorf("cors: %q", c.CORSOrigins)
			}
		}, ""},
		{"bad cors origin", []string{"--cors-origins", "app.example/path"}, nil, nil, "--cors-origins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), io.Discard, io.Discard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the server's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunServesAndShutsDown runs the whole program on port 0, uses it with a
// token from the token subcommand, and stops it by cancelling its context.
func TestRunServesAndShutsDown(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"presenced", "--addr", "127.0.0.1:0", "--data", data}, env(nil), stdoutW, &stderr)
		stdoutW.Close()
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("no start-up line: %v\n%s", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	base := strings.TrimSpace(strings.TrimPrefix(line, "presenced listening on "))
	if !strings.Contains(stderr.String(), "DEVELOPMENT AUTH MODE") {
		t.Errorf("development auth mode not announced:\n%s", stderr.String())
	}

	get := func(path, tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(p, ""); code != http.StatusOK {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	var tok bytes.Buffer
	if err := run(ctx, []string{"presenced", "token", "--data", data, "--user", "fa8bf3dc-eca7-46b7-bad1-db199b62afc3", "--scopes", "Presence.Read"}, env(nil), &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/v1.0/me/presence", strings.TrimSpace(tok.String())); code != http.StatusOK || !strings.Contains(body, `"availability":"Offline"`) {
		t.Errorf("GET /me/presence with a minted token: %d %s", code, body)
	}
	if code, body := get("/_test/clock", ""); code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Errorf("/_test/ without --test-hooks: %d %s", code, body)
	}
	if code, body := get("/metrics", ""); code != http.StatusOK || !strings.Contains(body, `presenced_http_requests_total{method="GET",route="getPresence",status="200"} 1`) {
		t.Errorf("metrics: %d\n%s", code, body)
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

func TestTokenRejectsBadIDs(t *testing.T) {
	err := run(context.Background(), []string{"presenced", "token", "--data", t.TempDir(), "--user", "alice@contoso.com"}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--user") {
		t.Fatalf("got %v", err)
	}
}

// TestServeTLS serves HTTPS from --tls-cert/--tls-key, as SDKs that attach
// tokens only to https URLs need.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"presenced", "--addr", "127.0.0.1:0", "--data", dir, "--store", "memory", "--tls-cert", certFile, "--tls-key", keyFile}, env(nil), stdoutW, io.Discard)
		stdoutW.Close()
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	base := strings.TrimSpace(strings.TrimPrefix(line, "presenced listening on "))
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("start-up line %q", line)
	}
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(der)))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	client := &http.Client{Transport: tr}
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over TLS: %d", resp.StatusCode)
	}
	tr.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
