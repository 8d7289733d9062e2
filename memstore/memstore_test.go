package memstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) presence.Store { return memstore.New() })
}

// TestClosed checks that every method of a closed store returns ErrClosed
// and calls no fn.
func TestClosed(t *testing.T) {
	s := memstore.New()
	ctx := context.Background()
	k := presence.Key{Tenant: "t", User: "u"}
	if _, _, err := s.Update(ctx, k, func(st *presence.State) error { st.Seq = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	called := false
	if _, _, err := s.Update(ctx, k, func(*presence.State) error { called = true; return nil }); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	if _, err := s.Get(ctx, "t", []string{"u"}); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Due(ctx, time.Now(), 1); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Due after Close: %v", err)
	}
	if err := s.Visit(ctx, "t", []string{"u"}, func(int, *presence.State) { called = true }); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Visit after Close: %v", err)
	}
	if err := s.Scan(ctx, func(presence.Key, presence.State) error { called = true; return nil }); !errors.Is(err, memstore.ErrClosed) {
		t.Errorf("Scan after Close: %v", err)
	}
	if called {
		t.Error("a closed store called fn")
	}
}
