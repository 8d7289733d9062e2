// Package gosdk drives a real presenced with the official Microsoft Graph
// Go SDK (github.com/microsoftgraph/msgraph-sdk-go), unchanged: only its
// base URL and token source point at presenced. It is a module of its own,
// so that the SDK, which is large to build, is not a dependency of
// presenced; scripts/test runs it.
package gosdk

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoft/kiota-abstractions-go/serialization"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// The ids `presenced token` uses by default, and two users of this test.
const (
	app  = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	u1   = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	u2   = "66825e03-7ef5-42da-9069-724602c31f6b"
	none = "dc74d9bb-6afe-433d-8eaa-e39d80d3a647" // never written to
)

// staticToken is the SDK's authentication provider for a fixed token.
type staticToken string

func (t staticToken) AuthenticateRequest(_ context.Context, req *abstractions.RequestInformation, _ map[string]any) error {
	req.Headers.Add("Authorization", "Bearer "+string(t))
	return nil
}

func ptr[T any](v T) *T { return &v }

// server is a presenced process on a fresh data directory.
type server struct {
	bin, data, base string
}

// startServer builds presenced from the enclosing module and starts it in
// development auth mode, trusting caPEM for notification URLs.
func startServer(t *testing.T, caPEM []byte) *server {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "presenced")
	build := exec.Command("go", "build", "-o", bin, "./cmd/presenced")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building presenced: %v\n%s", err, out)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{bin: bin, data: filepath.Join(dir, "data")}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--data", s.data, "--webhook-ca-file", ca, "--log-level", "warn",
		// The test's webhook receiver listens on loopback, which presenced
		// refuses to call unless told otherwise.
		"--webhook-allow-private")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("presenced's log:\n%s", logs.String())
		}
	})
	listening := regexp.MustCompile(`listening on (http://\S+)`)
	found := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		var seen []byte
		for {
			n, err := stdout.Read(buf)
			seen = append(seen, buf[:n]...)
			if m := listening.FindSubmatch(seen); m != nil {
				found <- string(m[1])
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
			if err != nil {
				close(found)
				return
			}
		}
	}()
	select {
	case base, ok := <-found:
		if !ok {
			t.Fatalf("presenced exited before listening:\n%s", logs.String())
		}
		s.base = base
	case <-time.After(30 * time.Second):
		t.Fatalf("presenced did not start:\n%s", logs.String())
	}
	return s
}

// token mints a token of the development issuer with `presenced token`.
func (s *server) token(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(s.bin, append([]string{"token", "--data", s.data}, args...)...).Output()
	if err != nil {
		t.Fatalf("presenced token %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// client returns the SDK's client for version ("v1.0" or "beta") with token.
func (s *server) client(t *testing.T, version, token string) *msgraphsdk.GraphServiceClient {
	t.Helper()
	adapter, err := msgraphsdk.NewGraphRequestAdapter(staticToken(token))
	if err != nil {
		t.Fatal(err)
	}
	adapter.SetBaseUrl(s.base + "/" + version)
	return msgraphsdk.NewGraphServiceClient(adapter)
}

// receiver is a webhook endpoint: it answers the validation handshake and
// records the users whose presence changed.
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	users []string
}

func newReceiver(t *testing.T) *receiver {
	rx := &receiver{}
	rx.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, tok)
			return
		}
		body, _ := io.ReadAll(r.Body)
		for _, m := range regexp.MustCompile(`"resource":"communications/presences/([0-9a-f-]{36})"`).FindAllSubmatch(body, -1) {
			rx.mu.Lock()
			rx.users = append(rx.users, string(m[1]))
			rx.mu.Unlock()
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rx.srv.Close)
	return rx
}

func (rx *receiver) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rx.srv.Certificate().Raw})
}

func (rx *receiver) notified(user string) bool {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	for _, u := range rx.users {
		if u == user {
			return true
		}
	}
	return false
}

// wantPair checks a presence the SDK read.
func wantPair(t *testing.T, what string, p models.Presenceable, availability, activity string) {
	t.Helper()
	if p == nil || p.GetAvailability() == nil || p.GetActivity() == nil {
		t.Fatalf("%s: no availability or activity in %v", what, p)
	}
	if *p.GetAvailability() != availability || *p.GetActivity() != activity {
		t.Fatalf("%s: %s/%s, want %s/%s", what, *p.GetAvailability(), *p.GetActivity(), availability, activity)
	}
}

// wantODataError checks that err is the SDK's typed Graph error with code
// and HTTP status.
func wantODataError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var oe *odataerrors.ODataError
	if !errors.As(err, &oe) {
		t.Fatalf("%s: error %v (%T), want an *odataerrors.ODataError", what, err, err)
	}
	if oe.ResponseStatusCode != status || oe.GetErrorEscaped() == nil || oe.GetErrorEscaped().GetCode() == nil || *oe.GetErrorEscaped().GetCode() != code {
		t.Fatalf("%s: status %d, error %v; want %d %s", what, oe.ResponseStatusCode, oe.GetErrorEscaped(), status, code)
	}
}

func TestOfficialGoSDK(t *testing.T) {
	ctx := context.Background()
	rx := newReceiver(t)
	s := startServer(t, rx.caPEM())
	appToken := s.token(t)
	me := s.token(t, "--user", u1, "--scopes", "Presence.Read.All Presence.ReadWrite")

	for _, version := range []string{"v1.0", "beta"} {
		t.Run(version, func(t *testing.T) {
			c := s.client(t, version, appToken)
			user := c.Users().ByUserId(u1).Presence()

			p, err := c.Users().ByUserId(none).Presence().Get(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantPair(t, "a user never written to", p, "Offline", "Offline")

			set := users.NewItemPresenceSetPresencePostRequestBody()
			set.SetSessionId(ptr(app))
			set.SetAvailability(ptr("Busy"))
			set.SetActivity(ptr("InACall"))
			set.SetExpirationDuration(serialization.NewDuration(0, 0, 0, 1, 0, 0, 0))
			if err := user.SetPresence().Post(ctx, set, nil); err != nil {
				t.Fatalf("setPresence: %v", err)
			}
			p, err = user.Get(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantPair(t, "after setPresence", p, "Busy", "InACall")
			if p.GetId() == nil || *p.GetId() != u1 || p.GetSequenceNumber() == nil || p.GetOutOfOfficeSettings() == nil {
				t.Fatalf("presence read by the SDK lacks id, sequenceNumber or outOfOfficeSettings")
			}

			pref := users.NewItemPresenceSetUserPreferredPresencePostRequestBody()
			pref.SetAvailability(ptr("DoNotDisturb"))
			pref.SetActivity(ptr("DoNotDisturb"))
			pref.SetExpirationDuration(serialization.NewDuration(0, 0, 0, 8, 0, 0, 0))
			if err := user.SetUserPreferredPresence().Post(ctx, pref, nil); err != nil {
				t.Fatalf("setUserPreferredPresence: %v", err)
			}

			msg := models.NewPresenceStatusMessage()
			item := models.NewItemBody()
			item.SetContent(ptr("From the Go SDK"))
			item.SetContentType(ptr(models.TEXT_BODYTYPE))
			msg.SetMessage(item)
			expiry := models.NewDateTimeTimeZone()
			expiry.SetDateTime(ptr(time.Now().AddDate(0, 0, 2).Format("2006-01-02T15:04:05")))
			expiry.SetTimeZone(ptr("Pacific Standard Time"))
			msg.SetExpiryDateTime(expiry)
			status := users.NewItemPresenceSetStatusMessagePostRequestBody()
			status.SetStatusMessage(msg)
			if err := user.SetStatusMessage().Post(ctx, status, nil); err != nil {
				t.Fatalf("setStatusMessage: %v", err)
			}

			// A delegated reader: beta's bulk read takes Presence.Read.All
			// only, which the application token (Presence.ReadWrite.All)
			// does not hold.
			ids := communications.NewGetPresencesByUserIdPostRequestBody()
			ids.SetIds([]string{u1, none})
			reader := s.client(t, version, me)
			many, err := reader.Communications().GetPresencesByUserId().PostAsGetPresencesByUserIdPostResponse(ctx, ids, nil)
			if err != nil {
				t.Fatalf("getPresencesByUserId: %v", err)
			}
			if got := many.GetValue(); len(got) != 2 {
				t.Fatalf("getPresencesByUserId: %d presences, want 2", len(got))
			}
			wantPair(t, "bulk, first id", many.GetValue()[0], "DoNotDisturb", "DoNotDisturb")
			wantPair(t, "bulk, second id", many.GetValue()[1], "Offline", "Offline")
			sm := many.GetValue()[0].GetStatusMessage()
			if sm == nil || sm.GetMessage() == nil || *sm.GetMessage().GetContent() != "From the Go SDK" || sm.GetExpiryDateTime() == nil {
				t.Fatalf("status message as the SDK read it: %v", sm)
			}

			if err := user.ClearUserPreferredPresence().Post(ctx, nil); err != nil {
				t.Fatalf("clearUserPreferredPresence: %v", err)
			}
			clear := users.NewItemPresenceClearPresencePostRequestBody()
			clear.SetSessionId(ptr(app))
			if err := user.ClearPresence().Post(ctx, clear, nil); err != nil {
				t.Fatalf("clearPresence: %v", err)
			}
			p, err = user.Get(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantPair(t, "after clearPresence", p, "Offline", "Offline")

			// Graph's errors reach the caller as the SDK's typed errors.
			err = user.ClearPresence().Post(ctx, clear, nil)
			wantODataError(t, "clearPresence without a session", err, 404, "NotFound")
			bad := users.NewItemPresenceSetPresencePostRequestBody()
			bad.SetSessionId(ptr(app))
			bad.SetAvailability(ptr("Busy"))
			bad.SetActivity(ptr("Busy"))
			wantODataError(t, "setPresence Busy/Busy", user.SetPresence().Post(ctx, bad, nil), 400, "InvalidArgument")

			// A delegated token reads its own presence through /me.
			mine, err := s.client(t, version, me).Me().Presence().Get(ctx, nil)
			if err != nil {
				t.Fatalf("/me/presence: %v", err)
			}
			wantPair(t, "/me/presence", mine, "Offline", "Offline")
		})
	}

	t.Run("subscription", func(t *testing.T) {
		c := s.client(t, "v1.0", me)
		sub := models.NewSubscription()
		sub.SetChangeType(ptr("updated"))
		sub.SetNotificationUrl(ptr(rx.srv.URL + "/hook"))
		sub.SetResource(ptr("/communications/presences/" + u2))
		sub.SetExpirationDateTime(ptr(time.Now().Add(50 * time.Minute)))
		sub.SetClientState(ptr("go-sdk"))
		created, err := c.Subscriptions().Post(ctx, sub, nil)
		if err != nil {
			t.Fatalf("creating a subscription: %v", err)
		}
		if created.GetId() == nil || created.GetExpirationDateTime() == nil || created.GetResource() == nil {
			t.Fatalf("the created subscription as the SDK read it lacks id, expiry or resource")
		}
		set := users.NewItemPresenceSetPresencePostRequestBody()
		set.SetSessionId(ptr(app))
		set.SetAvailability(ptr("Away"))
		set.SetActivity(ptr("Away"))
		if err := s.client(t, "v1.0", appToken).Users().ByUserId(u2).Presence().SetPresence().Post(ctx, set, nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !rx.notified(u2) {
			if time.Now().After(deadline) {
				t.Fatal("no notification within 10 s of the change")
			}
			time.Sleep(20 * time.Millisecond)
		}
		got, err := c.Subscriptions().BySubscriptionId(*created.GetId()).Get(ctx, nil)
		if err != nil || got.GetId() == nil || *got.GetId() != *created.GetId() {
			t.Fatalf("reading the subscription back: %v", err)
		}
		if err := c.Subscriptions().BySubscriptionId(*created.GetId()).Delete(ctx, nil); err != nil {
			t.Fatalf("deleting the subscription: %v", err)
		}
		_, err = c.Subscriptions().BySubscriptionId(*created.GetId()).Get(ctx, nil)
		wantODataError(t, "reading a deleted subscription", err, 404, "NotFound")
	})
}
