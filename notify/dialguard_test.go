package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
)

func TestAddressKind(t *testing.T) {
	for _, c := range []struct{ addr, kind string }{
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.1.2.3", "private"},
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"192.168.1.1", "private"},
		{"fd00::1", "private"},
		{"100.64.0.1", "private"},
		{"169.254.169.254", "link-local"},
		{"::ffff:169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"239.1.1.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "reserved"},
		{"64:ff9b::a00:1", "private"}, // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", ""},      // NAT64 of 8.8.8.8
		{"2002:7f00:1::", "loopback"}, // 6to4 of 127.0.0.1
		{"::7f00:1", "reserved"},      // IPv4-compatible
		{"8.8.8.8", ""},
		{"2606:4700:4700::1111", ""},
		{"20.190.128.1", ""},
	} {
		if got := AddressKind(netip.MustParseAddr(c.addr)); got != c.kind {
			t.Errorf("AddressKind(%s) = %q, want %q", c.addr, got, c.kind)
		}
	}
}

// guarded is a client like presenced's webhook client: GuardTransport on,
// redirects not followed.
func guarded() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	GuardTransport(tr)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestGuardRefusesEveryConnection: the handshake and every delivery are
// refused on the address dialled, whether the URL names it or a name
// resolves to it; the receiver sees no request.
func TestGuardRefusesEveryConnection(t *testing.T) {
	var hits atomic.Int64
	rx := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(r.URL.Query().Get("validationToken")))
	}))
	defer rx.Close()
	port := rx.URL[strings.LastIndexByte(rx.URL, ':')+1:]
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	n, err := New(Config{Service: presence.NewService(memstore.New(), clock, nil), Client: guarded()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	for _, c := range []struct{ url, kind string }{
		{rx.URL + "/hook", "loopback"},
		{"https://localhost:" + port + "/hook", "loopback"},
		{"https://[::ffff:127.0.0.1]:" + port + "/hook", "loopback"},
		{"https://169.254.169.254/latest/meta-data", "link-local"},
		{"https://10.255.255.1:9/hook", "private"},
	} {
		err := n.handshake(ctx, c.url)
		var pe *presence.Error
		if !errors.As(err, &pe) || pe.Code != presence.CodeInvalidRequest || !strings.Contains(pe.Message, "a "+c.kind+" address") {
			t.Errorf("handshake %s: %v, want InvalidRequest saying it is a %s address", c.url, err, c.kind)
		}
		if n.d.post(ctx, c.url, []byte(`{"value":[]}`)) {
			t.Errorf("delivery to %s succeeded", c.url)
		}
	}
	if h := hits.Load(); h != 0 {
		t.Errorf("the receiver got %d requests", h)
	}
}

// TestGuardFollowsNoRedirect: a handshake answered with a redirect to
// an internal address fails; the redirect is not followed.
func TestGuardFollowsNoRedirect(t *testing.T) {
	var followed atomic.Bool
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		_, _ = w.Write([]byte(r.URL.Query().Get("validationToken")))
	}))
	defer internal.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+"/?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	// Private addresses allowed here, so that the redirector can be reached
	// at all: the client alone must not follow.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	n, err := New(Config{Service: presence.NewService(memstore.New(), clock, nil), Client: client})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.handshake(context.Background(), redirector.URL+"/hook"); err == nil {
		t.Error("a redirected handshake succeeded")
	}
	if followed.Load() {
		t.Error("the redirect was followed")
	}
}
