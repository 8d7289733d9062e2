package notify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	presence "github.com/presenced/presenced"
)

// subStore keeps subscriptions durably: an append-only file of JSON lines,
// each a whole subscription or a deletion, fsynced before a change is
// acknowledged, rewritten whole when dead lines outnumber live ones.
// Subscriptions change rarely (create, renew, delete), so one fsync per
// change is cheap; an empty dir keeps them in memory only.
type subStore struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	lines int
	live  map[string]presence.Subscription
}

type subRecord struct {
	Put *presence.Subscription `json:"put,omitempty"`
	Del string                 `json:"del,omitempty"`
}

// openSubStore replays dir/subscriptions.jsonl. A torn last line (a crash
// mid-append) is dropped; any other bad line is an error.
func openSubStore(dir string) (*subStore, error) {
	s := &subStore{live: make(map[string]presence.Subscription)}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	s.path = filepath.Join(dir, "subscriptions.jsonl")
	data, err := os.ReadFile(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	good := 0
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		var rec subRecord
		if err := json.Unmarshal(line, &rec); err != nil || (rec.Put == nil && rec.Del == "") {
			if !complete || len(bytes.TrimSpace(rest)) == 0 {
				break // a torn tail
			}
			return nil, fmt.Errorf("subscriptions: corrupt line after %d bytes of %s", good, s.path)
		}
		s.apply(rec)
		s.lines++
		good += len(line) + 1
		data = rest
	}
	if err := s.rewrite(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *subStore) apply(rec subRecord) {
	if rec.Put != nil {
		s.live[rec.Put.ID] = *rec.Put
	} else {
		delete(s.live, rec.Del)
	}
}

// all returns every stored subscription.
func (s *subStore) all() []presence.Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]presence.Subscription, 0, len(s.live))
	for _, sub := range s.live {
		out = append(out, sub)
	}
	return out
}

// put stores sub durably.
func (s *subStore) put(sub presence.Subscription) error {
	return s.append(subRecord{Put: &sub})
}

// replace stores sub durably in place of the stored subscription of its
// id, and reports false, storing nothing, when there is none: a change of a
// subscription deleted meanwhile must not bring it back.
func (s *subStore) replace(sub presence.Subscription) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live[sub.ID]; !ok {
		return false, nil
	}
	return true, s.appendLocked(subRecord{Put: &sub})
}

// del removes a subscription durably.
func (s *subStore) del(id string) error {
	return s.append(subRecord{Del: id})
}

func (s *subStore) append(rec subRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendLocked(rec)
}

// appendLocked writes rec and applies it; s.mu held.
func (s *subStore) appendLocked(rec subRecord) error {
	if s.f != nil {
		line, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("subscriptions: %w", err)
		}
		if _, err := s.f.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("subscriptions: write: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("subscriptions: sync: %w", err)
		}
		s.lines++
	}
	s.apply(rec)
	if s.f != nil && s.lines > 2*len(s.live)+64 {
		return s.rewrite()
	}
	return nil
}

// rewrite replaces the file by one line per live subscription, atomically.
// It is called with s.mu held or before s is shared.
func (s *subStore) rewrite() error {
	if s.path == "" {
		return nil
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, sub := range s.live {
		line, err := json.Marshal(subRecord{Put: &sub})
		if err != nil {
			f.Close()
			return fmt.Errorf("subscriptions: %w", err)
		}
		_, _ = w.Write(append(line, '\n'))
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("subscriptions: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, err = os.OpenFile(s.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	s.lines = len(s.live)
	return nil
}

// close releases the file.
func (s *subStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("subscriptions: %w", err)
	}
	return nil
}
