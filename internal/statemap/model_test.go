package statemap

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	presence "github.com/presenced/presenced"
)

// TestMapAgainstModel runs random sequences of publishes, restores, reads
// and visits against a plain map: every read gives the last state put,
// whichever table of its shard the key is in and however often the shards
// published. The keys crowd into a few shards, so that keys wait in a
// shard's dirty table while others are published, and published tables
// are copied and merged.
func TestMapAgainstModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := New()
		model := map[presence.Key]uint64{}
		keys := crowdedKeys(m, rapid.IntRange(1, 4).Draw(rt, "shards"), rapid.IntRange(1, 80).Draw(rt, "perShard"))
		keyOf := func(i int) presence.Key { return keys[i%len(keys)] }
		restoring := rapid.Bool().Draw(rt, "restoring")
		if restoring {
			// Fill as a store's Open does: restores, then one IndexDue.
			for i := range rapid.IntRange(0, len(keys)).Draw(rt, "restored") {
				k, seq := keyOf(i), uint64(i+1)
				m.RestoreState(k, presence.State{Seq: seq})
				model[k] = seq
			}
			m.IndexDue()
		}
		for step := range rapid.IntRange(1, 400).Draw(rt, "steps") {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0, 1:
				k := keyOf(rapid.IntRange(0, len(keys)-1).Draw(rt, "pub"))
				seq := uint64(1000 + step)
				m.Publish(k, presence.State{Seq: seq})
				model[k] = seq
			case 2:
				k := keyOf(rapid.IntRange(0, len(keys)-1).Draw(rt, "load"))
				if got := m.Load(k).Seq; got != model[k] {
					rt.Fatalf("Load(%v).Seq = %d, want %d", k, got, model[k])
				}
			case 3:
				n := rapid.IntRange(1, len(keys)).Draw(rt, "visit")
				users := make([]string, n)
				for i := range users {
					users[i] = keyOf(i).User
				}
				m.Visit("t", users, func(i int, s *presence.State) {
					if want := model[keyOf(i)]; s.Seq != want {
						rt.Fatalf("Visit: %v has Seq %d, want %d", keyOf(i), s.Seq, want)
					}
				})
			}
		}
		if m.Len() != len(model) {
			rt.Fatalf("Len = %d, want %d", m.Len(), len(model))
		}
		seen := 0
		for i := range m.shards {
			sh := &m.shards[i]
			sh.mu.Lock()
			sh.each(func(e *entry) {
				seen++
				if _, err := decodeState(e.encoding(), nil, nil); err != nil {
					rt.Fatalf("%v: %v", e.key, err)
				}
			})
			sh.mu.Unlock()
		}
		if seen != len(model) {
			rt.Fatalf("the tables hold %d entries, want %d (a key in both, or lost)", seen, len(model))
		}
	})
}

// crowdedKeys returns perShard keys in each of shards shards of m.
func crowdedKeys(m *Map, shards, perShard int) []presence.Key {
	byShard := map[uint64][]presence.Key{}
	var keys []presence.Key
	full := 0
	for i := 0; full < shards; i++ {
		k := presence.Key{Tenant: "t", User: fmt.Sprint("u", i)}
		sh := m.hash(k) & (shardCount - 1)
		if len(byShard) == shards && byShard[sh] == nil {
			continue
		}
		if len(byShard[sh]) < perShard {
			byShard[sh] = append(byShard[sh], k)
			keys = append(keys, k)
			if len(byShard[sh]) == perShard {
				full++
			}
		}
	}
	return keys
}
