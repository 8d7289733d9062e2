package memstore_test

import (
	"testing"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) presence.Store { return memstore.New() })
}
