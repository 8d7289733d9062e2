package filestore

import (
	"context"
	"sync"
	"testing"
)

// TestPipelinedSyncs runs many concurrent writers with one, two and three
// fsyncs allowed at once (and CompactBytes small enough to rotate segments
// while fsyncs run): every acknowledged write is read back after a
// reopen, and every record made durable was counted with its commit time.
func TestPipelinedSyncs(t *testing.T) {
	for _, depth := range []int{1, 2, 3} {
		t.Run(string(rune('0'+depth)), func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, Options{SyncDepth: depth, CompactBytes: 16 << 10})
			const writers, each = 24, 40
			var wg sync.WaitGroup
			for g := range writers {
				wg.Go(func() {
					for i := range each {
						if _, _, err := s.Update(context.Background(), key(g), setSeq(uint64(i+1))); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			st := s.Stats()
			if st.Records != writers*each || st.Syncs == 0 || st.Syncs > st.Records || st.CommitSeconds <= 0 {
				t.Errorf("stats %+v, want %d records", st, writers*each)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, dir, Options{})
			defer s.Close()
			for i, seq := range seqs(t, s, writers) {
				if seq != each {
					t.Errorf("user %d: seq %d after reopen, want %d", i, seq, each)
				}
			}
		})
	}
}
