package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"pgregory.net/rapid"
)

// testModel runs random sequences of Update, Get and Due against a store
// and a plain map, and checks that they agree.
func testModel(t *testing.T, open func(t *testing.T) presence.Store) {
	rapid.Check(t, func(rt *rapid.T) {
		s := open(t)
		defer closeStore(t, s)
		ctx := context.Background()
		tenants := []string{newID(), newID()}
		users := []string{newID(), newID(), newID(), newID()}
		model := make(map[presence.Key]presence.State)
		genKey := rapid.Custom(func(rt *rapid.T) presence.Key {
			return presence.Key{
				Tenant: rapid.SampledFrom(tenants).Draw(rt, "tenant"),
				User:   rapid.SampledFrom(users).Draw(rt, "user"),
			}
		})
		// Instants on a coarse grid, so that ties and exact hits occur.
		genInstant := rapid.Custom(func(rt *rapid.T) time.Time {
			return t0().Add(time.Duration(rapid.IntRange(-3, 3).Draw(rt, "seconds")) * time.Second)
		})
		genDue := rapid.Custom(func(rt *rapid.T) time.Time {
			if rapid.IntRange(0, 3).Draw(rt, "never") == 0 {
				return time.Time{}
			}
			return genInstant.Draw(rt, "due")
		})
		errRejected := errors.New("rejected")

		rt.Repeat(map[string]func(*rapid.T){
			"Update": func(rt *rapid.T) {
				key := genKey.Draw(rt, "key")
				due := genDue.Draw(rt, "due")
				fail := rapid.IntRange(0, 4).Draw(rt, "fail") == 0
				app := rapid.SampledFrom([]string{"", "app-a", "app-b"}).Draw(rt, "app")
				calls := 0
				before, after, err := s.Update(ctx, key, func(st *presence.State) error {
					calls++
					st.Seq++
					st.SeqAt = t0()
					st.Due = due
					if app != "" {
						st.Sessions = append(st.Sessions, presence.Session{ID: app, RefreshedAt: t0()})
					}
					if fail {
						return errRejected
					}
					return nil
				})
				if calls == 0 {
					rt.Fatalf("Update(%s) never called fn", key)
				}
				if fail {
					if !errors.Is(err, errRejected) {
						rt.Fatalf("Update(%s) with failing fn: err = %v", key, err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("Update(%s): %v", key, err)
				}
				want := model[key].Clone()
				if !sameState(before, want) {
					rt.Fatalf("Update(%s): before = %s, want %s", key, mustJSON(before), mustJSON(want))
				}
				want.Seq++
				want.SeqAt = t0()
				want.Due = due
				if app != "" {
					want.Sessions = append(want.Sessions, presence.Session{ID: app, RefreshedAt: t0()})
				}
				if !sameState(after, want) {
					rt.Fatalf("Update(%s): after = %s, want %s", key, mustJSON(after), mustJSON(want))
				}
				model[key] = want
			},
			"Get": func(rt *rapid.T) {
				tenant := rapid.SampledFrom(tenants).Draw(rt, "tenant")
				ids := rapid.SliceOfN(rapid.SampledFrom(append([]string{"unknown"}, users...)), 0, 6).Draw(rt, "users")
				got, err := s.Get(ctx, tenant, ids)
				if err != nil {
					rt.Fatalf("Get: %v", err)
				}
				if len(got) != len(ids) {
					rt.Fatalf("Get of %d users returned %d", len(ids), len(got))
				}
				for i, u := range ids {
					if want := model[presence.Key{Tenant: tenant, User: u}]; !sameState(got[i], want) {
						rt.Fatalf("Get[%d] (%s) = %s, want %s", i, u, mustJSON(got[i]), mustJSON(want))
					}
				}
			},
			"Due": func(rt *rapid.T) {
				now := genInstant.Draw(rt, "now")
				limit := rapid.IntRange(0, 10).Draw(rt, "limit")
				got, err := s.Due(ctx, now, limit)
				if err != nil {
					rt.Fatalf("Due: %v", err)
				}
				if err := checkDue(model, now, limit, got); err != nil {
					rt.Fatalf("Due(%v, %d) = %v: %v", now.Sub(t0()), limit, got, err)
				}
			},
		})
	})
}

// checkDue checks the answer of Due(now, limit) against the model.
func checkDue(model map[presence.Key]presence.State, now time.Time, limit int, got []presence.Key) error {
	var eligible []presence.Key
	for k, st := range model {
		if !st.Due.IsZero() && !st.Due.After(now) {
			eligible = append(eligible, k)
		}
	}
	if want := min(max(limit, 0), len(eligible)); len(got) != want {
		return fmt.Errorf("%d keys, want %d of %d due", len(got), want, len(eligible))
	}
	seen := make(map[presence.Key]bool)
	var last time.Time
	for i, k := range got {
		if seen[k] {
			return fmt.Errorf("key %s twice", k)
		}
		seen[k] = true
		if !slices.Contains(eligible, k) {
			return fmt.Errorf("key %s is not due", k)
		}
		due := model[k].Due
		if i > 0 && due.Before(last) {
			return fmt.Errorf("key %s (due %v) after one due %v: not earliest first", k, due, last)
		}
		last = due
	}
	for _, k := range eligible {
		if !seen[k] && model[k].Due.Before(last) {
			return fmt.Errorf("key %s due %v left out for one due %v", k, model[k].Due, last)
		}
	}
	return nil
}
