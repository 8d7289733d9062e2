package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// A lease round running while the node leaves cannot undo the leaving: the
// node stays out of the live set, owns nothing, and keeps draining what
// work still names. Before Leave waited for the round in flight, such a
// round heartbeat the node back in, took its partitions again (so that
// deliveries started on them), and stopped draining them, so that Leave
// returned at once and the shutdown cut the work it should have waited for.
func TestLeaveDuringALeaseRound(t *testing.T) {
	srv := redistest.Start(t)
	for i := range 8 {
		prefix := "leave" + presence.NewGUID()[:8]
		var busy atomic.Bool
		busy.Store(true)
		a := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "a", Busy: func() []int {
			if !busy.Load() {
				return nil
			}
			return []int{0, 1, 2}
		}})
		if a.OwnedPartitions() != Partitions {
			t.Fatalf("round %d: a alone owns %d", i, a.OwnedPartitions())
		}
		// Rounds back to back while a leaves.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				a.leaseTick(ctx)
				cancel()
			}
		})
		time.Sleep(time.Duration(i) * time.Millisecond) // land the Leave at different points of a round
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done <- a.Leave(ctx)
		}()
		waitFor(t, 5*time.Second, "a stops acting", func() bool { return a.OwnedPartitions() == 0 })
		// Leave waits for the work on partitions 0-2, whatever the rounds do.
		for range 5 {
			select {
			case err := <-done:
				t.Fatalf("round %d: Leave returned while the work it drains went on: %v", i, err)
			case <-time.After(20 * time.Millisecond):
			}
			if n := a.OwnedPartitions(); n != 0 {
				t.Fatalf("round %d: a leaving owns %d partitions again", i, n)
			}
		}
		busy.Store(false)
		if err := <-done; err != nil {
			t.Fatalf("round %d: Leave: %v", i, err)
		}
		close(stop)
		wg.Wait()
		cli := *a.cli.Load()
		if err := cli.Do(context.Background(), cli.B().Zscore().Key(a.nodesKey()).Member("a").Build()).Error(); err == nil {
			t.Errorf("round %d: a is among the live nodes after it left", i)
		}
	}
}
