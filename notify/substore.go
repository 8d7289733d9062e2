package notify

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
)

// subFileName is the subscription file inside the notifier's directory.
const subFileName = "subscriptions.jsonl"

// subStore keeps subscriptions durably: an append-only file of lines, each
// a CRC-32C (8 hex digits, of the JSON that follows), a space and the JSON
// of a whole subscription or a deletion; fsynced before a change is
// acknowledged, rewritten whole when dead lines outnumber live ones.
// Subscriptions change rarely (create, renew, delete), so one fsync per
// change is cheap; an empty dir keeps them in memory only.
//
// A failed write (a full disk) leaves no half line: the file is cut back
// to its last whole line before the failure is reported, and while that
// cannot be done no line is appended. Such failures are
// presence.Unavailable: the client may retry. Lines of the first format
// (JSON alone, no checksum) are read, and rewritten at once.
type subStore struct {
	mu   sync.Mutex
	path string
	f    subFile // nil with a path: to be reopened before the next append
	// wrap, when set, wraps the file opened for appending (tests inject
	// write faults with it).
	wrap func(subFile) subFile
	// size is the length of the file's whole, durable lines; dirty says
	// the file may hold bytes past it (a failed write not yet cut back).
	size  int64
	dirty bool
	lines int
	live  map[string]presence.Subscription
}

// subFile is what the store needs of the file it appends to; *os.File
// has it.
type subFile interface {
	Write([]byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

type subRecord struct {
	Put *presence.Subscription `json:"put,omitempty"`
	Del string                 `json:"del,omitempty"`
}

var subCRC = crc32.MakeTable(crc32.Castagnoli)

// encodeSubLine returns the line of rec, newline included.
func encodeSubLine(rec subRecord) ([]byte, error) {
	js, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	line := make([]byte, 0, 9+len(js)+1)
	line = hex.AppendEncode(line, binary.BigEndian.AppendUint32(nil, crc32.Checksum(js, subCRC)))
	line = append(line, ' ')
	line = append(line, js...)
	return append(line, '\n'), nil
}

// decodeSubLine parses one line (without its newline): checksummed, or of
// the first format (legacy reports that).
func decodeSubLine(line []byte) (rec subRecord, legacy bool, err error) {
	js := line
	if len(line) > 0 && line[0] == '{' {
		legacy = true
	} else {
		if len(line) < 10 || line[8] != ' ' {
			return rec, false, errors.New("no checksum")
		}
		var sum [4]byte
		if _, err := hex.Decode(sum[:], line[:8]); err != nil {
			return rec, false, errors.New("bad checksum field")
		}
		js = line[9:]
		if crc32.Checksum(js, subCRC) != binary.BigEndian.Uint32(sum[:]) {
			return rec, false, errors.New("checksum mismatch")
		}
	}
	if err := json.Unmarshal(js, &rec); err != nil {
		return rec, legacy, fmt.Errorf("bad record: %w", err)
	}
	if (rec.Put == nil) == (rec.Del == "") || (rec.Put != nil && rec.Put.ID == "") {
		return rec, legacy, errors.New("bad record: neither one put nor one del")
	}
	return rec, legacy, nil
}

// openSubStore replays dir/subscriptions.jsonl. A torn last line (no
// newline: a crash mid-append) is dropped; any other bad line is an error
// naming the file and the offset (presenced repair drops it).
func openSubStore(dir string) (*subStore, error) {
	s := &subStore{live: make(map[string]presence.Subscription)}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	s.path = filepath.Join(dir, subFileName)
	data, err := os.ReadFile(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	good, needRewrite, err := s.readLines(data)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %s: %w; stop and run `presenced repair`", s.path, err)
	}
	s.size = int64(good)
	if needRewrite || s.lines > 2*len(s.live)+64 {
		if err := s.rewrite(); err == nil {
			return s, nil
		}
		// No room for a new file (a full disk): cut a torn tail back in
		// place instead; the rewrite waits for a later compaction.
	}
	if err := s.reopen(); err != nil {
		return nil, err
	}
	return s, nil
}

// readLines applies the lines of a subscription file to s. It returns the
// length of its whole lines, and whether the file needs rewriting (a torn
// last line, lines of the first format); a damaged whole line is an error
// naming its offset.
func (s *subStore) readLines(data []byte) (good int, needRewrite bool, err error) {
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		if !complete {
			return good, true, nil // a torn tail
		}
		rec, legacy, err := decodeSubLine(line)
		if err != nil {
			return good, needRewrite, fmt.Errorf("damaged line at offset %d: %v", good, err)
		}
		needRewrite = needRewrite || legacy
		s.apply(rec)
		s.lines++
		good += len(line) + 1
		data = rest
	}
	return good, needRewrite, nil
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

// appendLocked writes rec and applies it; s.mu held. A failure to write
// is presence.Unavailable, and leaves neither the file nor memory changed.
func (s *subStore) appendLocked(rec subRecord) error {
	if s.path != "" {
		line, err := encodeSubLine(rec)
		if err != nil {
			return err
		}
		if err := s.writeLine(line); err != nil {
			return presence.Unavailable(err)
		}
		s.lines++
	}
	s.apply(rec)
	if s.path != "" && s.lines > 2*len(s.live)+64 {
		// The change is durable already; a failed compaction (a full
		// disk) is tried again at the next change.
		_ = s.rewrite()
	}
	return nil
}

// writeLine appends line durably, or cuts the file back to its last whole
// line and reports why not.
func (s *subStore) writeLine(line []byte) error {
	if s.f == nil {
		if err := s.reopen(); err != nil {
			return err
		}
	}
	if s.dirty {
		if err := s.cutBack(); err != nil {
			return fmt.Errorf("subscriptions: cut back a failed write: %w", err)
		}
	}
	_, err := s.f.Write(line)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		s.dirty = true
		_ = s.cutBack()
		return fmt.Errorf("subscriptions: write %s: %w", s.path, err)
	}
	s.size += int64(len(line))
	return nil
}

// cutBack truncates the file to its whole lines, durably.
func (s *subStore) cutBack() error {
	err := s.f.Truncate(s.size)
	if err == nil {
		err = s.f.Sync()
	}
	if err == nil {
		s.dirty = false
	}
	return err
}

// reopen opens the file for appending, cutting back what follows its last
// whole line.
func (s *subStore) reopen() error {
	f, err := os.OpenFile(s.path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.dirty = f, true
	if s.wrap != nil {
		s.f = s.wrap(f)
	}
	if err := s.cutBack(); err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	return nil
}

// rewrite replaces the file by one line per live subscription, atomically.
// It is called with s.mu held or before s is shared.
func (s *subStore) rewrite() error {
	if s.path == "" {
		return nil
	}
	var buf []byte
	for _, sub := range s.live {
		line, err := encodeSubLine(subRecord{Put: &sub})
		if err != nil {
			return err
		}
		buf = append(buf, line...)
	}
	if err := writeFileAtomic(s.path, buf); err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	// The old file is gone: until the new one is open, appends reopen it.
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.size, s.lines = int64(len(buf)), len(s.live)
	return s.reopen()
}

// writeFileAtomic replaces path by data: a temporary file, fsynced,
// renamed over it, and the directory fsynced.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	_, werr := w.Write(data)
	if err := errors.Join(werr, w.Flush(), f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// close releases the file.
func (s *subStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	if s.dirty {
		_ = s.cutBack()
	}
	err := s.f.Close()
	s.f = nil
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("subscriptions: %w", err)
	}
	return nil
}

// SubscriptionRepair is what RepairSubscriptions did.
type SubscriptionRepair struct {
	// Name is the subscription file, empty when there is none.
	Name string
	// Kept and Dropped count its valid and damaged lines.
	Kept, Dropped int
	// Backup is the original, kept when lines were dropped.
	Backup string
}

// RepairSubscriptions drops the damaged lines of the subscription file in
// dir (the notifier's directory, <data>/notify), keeping every valid one
// and the original beside it, so that presenced starts again. A dropped
// line loses that one change: a dropped creation or renewal loses the
// subscription or its renewal, a dropped deletion brings the subscription
// back until it expires. presenced must not be running.
func RepairSubscriptions(dir string) (SubscriptionRepair, error) {
	var r SubscriptionRepair
	path := filepath.Join(dir, subFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("subscriptions: %w", err)
	}
	r.Name = path
	kept, err := repairLines(data, &r)
	if err != nil {
		return r, err
	}
	if r.Dropped == 0 {
		return r, nil
	}
	r.Backup = path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Link(path, r.Backup); err != nil {
		return r, fmt.Errorf("subscriptions: keep the original: %w", err)
	}
	if err := writeFileAtomic(path, kept); err != nil {
		return r, fmt.Errorf("subscriptions: %w", err)
	}
	return r, nil
}

// repairLines returns the valid whole lines of data, in the checksummed
// format, counting them and the dropped ones in r.
func repairLines(data []byte, r *SubscriptionRepair) ([]byte, error) {
	var kept []byte
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		data = rest
		rec, _, err := decodeSubLine(line)
		if err != nil || !complete {
			r.Dropped++
			continue
		}
		enc, err := encodeSubLine(rec)
		if err != nil {
			return nil, err
		}
		kept = append(kept, enc...)
		r.Kept++
	}
	return kept, nil
}
