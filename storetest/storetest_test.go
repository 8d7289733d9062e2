package storetest_test

import (
	"testing"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMemstore runs the suite on the simplest store, so that a change to
// the suite is checked where the suite lives.
func TestMemstore(t *testing.T) {
	storetest.Run(t, func(*testing.T) presence.Store { return memstore.New() })
}
