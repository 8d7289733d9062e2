package redisstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// TestClusterFailover kills a master of a Redis Cluster (3 masters, 3
// replicas) under 16 writers. With WaitReplicas 1 no acknowledged write
// may be lost; the writes to the dead master's slots fail (unavailable)
// until its replica has taken over, and, since WAIT 1 then has no replica
// to count, until the old master is back as the new one's replica. The
// variant without WAIT reports (does not assert) what asynchronous
// replication lost.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster")
	}
	for _, tc := range []struct {
		name string
		wait int
	}{{"Wait1", 1}, {"NoWait", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			c := redistest.StartClusterReplicated(t)
			s := open(t, c.Seeds(), Options{WaitReplicas: tc.wait, WaitTimeout: 2 * time.Second, OpTimeout: 3 * time.Second})
			ctx := context.Background()
			tenant := presence.NewGUID()
			const writers, each = 16, 4
			users := make([]string, writers*each)
			for i := range users {
				users[i] = presence.NewGUID()
			}
			acked := make([]atomic.Uint64, len(users))
			var okCount, failCount atomic.Int64
			var lastFail atomic.Int64 // Unix ns
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						u := w*each + i%each
						_, after, err := s.Update(ctx, presence.Key{Tenant: tenant, User: users[u]}, func(st *presence.State) error { st.Seq++; return nil })
						if err != nil {
							if !errors.Is(err, presence.ErrUnavailable) {
								t.Errorf("Update: %v", err)
								return
							}
							failCount.Add(1)
							lastFail.Store(time.Now().UnixNano())
							time.Sleep(20 * time.Millisecond)
							continue
						}
						okCount.Add(1)
						acked[u].Store(max(acked[u].Load(), after.Seq))
					}
				})
			}
			time.Sleep(500 * time.Millisecond)
			victim := c.Masters()[0]
			killed := time.Now()
			victim.Kill9()
			// The replica takes over (cluster-node-timeout 2 s); then the old
			// master comes back as its replica.
			waitFor(t, 20*time.Second, "a replica promoted", func() bool { return len(c.Masters()) == 3 })
			promoted := time.Since(killed)
			victim.Restart()
			time.Sleep(3 * time.Second)
			close(stop)
			wg.Wait()
			got, err := s.Get(ctx, tenant, users)
			if err != nil {
				t.Fatal(err)
			}
			lost := 0
			for u := range users {
				if got[u].Seq < acked[u].Load() {
					lost++
					if tc.wait > 0 {
						t.Errorf("user %d: Seq %d, acknowledged %d: an acknowledged write was lost", u, got[u].Seq, acked[u].Load())
					}
				}
			}
			window := time.Duration(0)
			if lf := lastFail.Load(); lf > 0 {
				window = time.Unix(0, lf).Sub(killed)
			}
			t.Logf("WaitReplicas %d: %d writes acknowledged, %d refused; replica promoted %v after the kill; last refusal %v after it; users with a lost acknowledged write: %d of %d",
				tc.wait, okCount.Load(), failCount.Load(), promoted.Round(time.Millisecond), window.Round(time.Millisecond), lost, len(users))
			if okCount.Load() == 0 || failCount.Load() == 0 {
				t.Errorf("the test exercised nothing: %d acknowledged, %d refused", okCount.Load(), failCount.Load())
			}
		})
	}
}
