package redisstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
	"github.com/presenced/presenced/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// After a Cluster's topology changes, rueidis closes the connections
	// it dropped 5 s later, in a goroutine of its own.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"))
}

// TestClosed checks that every method of a closed store returns ErrClosed
// and calls no fn.
func TestClosed(t *testing.T) {
	s := open(t, redistest.Start(t).URL(), Options{})
	ctx := context.Background()
	k := presence.Key{Tenant: "t", User: "u"}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	called := false
	if _, _, err := s.Update(ctx, k, func(*presence.State) error { called = true; return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	if _, err := s.Get(ctx, "t", []string{"u"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Due(ctx, time.Now(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Due after Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	if err := s.Events(ctx, func(RemoteEvent) { called = true }); !errors.Is(err, ErrClosed) {
		t.Errorf("Events after Close: %v", err)
	}
	if s.OwnedPartitions() != 0 {
		t.Errorf("a closed store owns %d partitions", s.OwnedPartitions())
	}
	if called {
		t.Error("a closed store called fn")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// open opens a store on url with its own key prefix, so that every store
// of a test is empty and independent, and closes it at cleanup if the test
// did not.
func open(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	if opts.URL == "" {
		opts.URL = url
	}
	if opts.NodeID == "" {
		opts.NodeID = "n-" + presence.NewGUID()[:8]
	}
	if opts.Prefix == "" {
		opts.Prefix = "t" + presence.NewGUID()[:8]
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) presence.Store {
		s := open(t, srv.URL(), Options{})
		if n := s.OwnedPartitions(); n != Partitions {
			t.Fatalf("a lone store owns %d partitions, want %d", n, Partitions)
		}
		return s
	})
}

func TestStoreCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t)
	storetest.Run(t, func(t *testing.T) presence.Store {
		s := open(t, c.Seeds(), Options{})
		if !s.cluster.Load() {
			t.Fatal("the store did not detect Redis Cluster")
		}
		return s
	})
}

func TestDurable(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunDurable(t, func(t *testing.T, dir string) presence.Store {
		// The same prefix for the same dir: a reopen finds the data.
		return open(t, srv.URL(), Options{Prefix: "d" + dir, NodeID: "durable"})
	})
}

func slogTo(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
