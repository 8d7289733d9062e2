package redisstore

import (
	"context"
	"sync/atomic"
	"testing"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// BenchmarkUpdate measures one Update (GET, Step-like change, CAS script)
// from parallel goroutines on distinct users, against a redis-server with
// appendfsync always on its Unix socket.
func BenchmarkUpdate(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, srv.URL(), Options{})
	tenant := presence.NewGUID()
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		k := presence.Key{Tenant: tenant, User: presence.NewGUID()}
		_ = n.Add(1)
		for pb.Next() {
			if _, _, err := s.Update(context.Background(), k, func(st *presence.State) error {
				st.Seq++
				st.Sessions = []presence.Session{{ID: k.User, Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}}}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGet650 measures a bulk read of 650 users.
func BenchmarkGet650(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, srv.URL(), Options{})
	tenant := presence.NewGUID()
	users := make([]string, 650)
	for i := range users {
		users[i] = presence.NewGUID()
		if _, _, err := s.Update(context.Background(), presence.Key{Tenant: tenant, User: users[i]}, appendOne); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if err := s.Visit(context.Background(), tenant, users, func(int, *presence.State) {}); err != nil {
			b.Fatal(err)
		}
	}
}
