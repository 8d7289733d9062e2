package graphapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
)

// TestStreamFilterCountsDistinctIDs checks that the stream's $filter takes
// what GET /communications/presences takes: its cap of 650 counts distinct
// ids (1.3, 4.2 #10), so an id repeated past 650 values is one user, and
// 651 distinct ids are too many.
func TestStreamFilterCountsDistinctIDs(t *testing.T) {
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	auth := twoUsers{"app": {Tenant: tenant, AppID: appA, Roles: []string{"Presence.Read.All"}}}
	srv, err := graphapi.NewServer(graphapi.Config{Service: svc, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	// With the streams closed, a stream ends once it has sent the current
	// presences.
	srv.CloseStreams()
	stream := func(values []string) *httptest.ResponseRecorder {
		filter := "id in ('" + strings.Join(values, "','") + "')"
		req := httptest.NewRequest(http.MethodGet, "/presenced/stream?$filter="+url.QueryEscape(filter), nil)
		req.Header.Set("Authorization", "Bearer app")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}

	repeated := make([]string, presence.MaxIDs+1)
	for i := range repeated {
		repeated[i] = userU1
		if i%2 == 1 {
			repeated[i] = strings.ToUpper(userU1)
		}
	}
	rec := stream(repeated)
	if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), "event: presence") != 1 {
		t.Errorf("one id in %d values: %d %q, want 200 and one event", len(repeated), rec.Code, rec.Body)
	}

	distinct := make([]string, presence.MaxIDs+1)
	for i := range distinct {
		distinct[i] = presence.NewGUID()
	}
	if rec := stream(distinct); rec.Code != http.StatusBadRequest {
		t.Errorf("%d distinct ids: %d %q, want 400", len(distinct), rec.Code, rec.Body)
	}
}

// blockingWriter is a ResponseWriter whose writes after the first flush
// wait until released, like a client that stopped reading.
type blockingWriter struct {
	header  http.Header
	mu      sync.Mutex
	body    strings.Builder
	flushes int
	blocked chan struct{} // closed when a write starts waiting
	release chan struct{}
	once    sync.Once
}

func (b *blockingWriter) Header() http.Header { return b.header }
func (b *blockingWriter) WriteHeader(int)     {}
func (b *blockingWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.body.Write(p)
}

func (b *blockingWriter) Flush() {
	b.mu.Lock()
	b.flushes++
	n := b.flushes
	b.mu.Unlock()
	if n > 1 {
		b.once.Do(func() { close(b.blocked) })
		<-b.release
	}
}

// TestStreamDropsSlowReader: a stream whose client falls more than its
// buffer behind ends with a reconnect event (reason tooSlow) instead of
// buffering; events reach it through Service.PublishRemote as they would
// from another node.
func TestStreamDropsSlowReader(t *testing.T) {
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	auth := twoUsers{"app": {Tenant: tenant, AppID: appA, Roles: []string{"Presence.Read.All"}}}
	srv, err := graphapi.NewServer(graphapi.Config{Service: svc, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/presenced/stream?$filter="+url.QueryEscape("id in ('"+userU1+"')"), nil)
	req.Header.Set("Authorization", "Bearer app")
	w := &blockingWriter{header: http.Header{}, blocked: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeHTTP(w, req)
	}()
	key := presence.Key{Tenant: tenant, User: userU1}
	event := func(seq uint64) presence.Event {
		return presence.Event{Key: key, After: presence.View{Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}, Seq: seq}}
	}
	// Wait for the stream to be watching: its first change blocks in write.
	for seq := uint64(1); ; seq++ {
		svc.PublishRemote(event(seq))
		select {
		case <-w.blocked:
		case <-time.After(10 * time.Millisecond):
			continue
		}
		break
	}
	for seq := uint64(1000); seq < 1200; seq++ {
		svc.PublishRemote(event(seq))
	}
	close(w.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a slow reader did not end")
	}
	body := w.body.String()
	if !strings.HasSuffix(body, "event: reconnect\ndata: {\"reason\":\"tooSlow\"}\n\n") {
		t.Errorf("the stream ended with %q, want a reconnect event with reason tooSlow", body[max(0, len(body)-200):])
	}
	if got := svc.Stats().EventsDropped; got == 0 {
		t.Error("no dropped event counted")
	}
	if n := srv.OpenStreams(); n != 0 {
		t.Errorf("%d streams open after it ended", n)
	}
}
