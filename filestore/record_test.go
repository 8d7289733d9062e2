package filestore

import (
	"errors"
	"fmt"
	"io"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// The store itself writes records with appendStateRecordAt and reads them
// back with replayInto (Map.Restore, which only validates the state). The
// tests write and read them whole, and replay serves as the oracle that
// replayInto is checked against.

// appendStateRecord appends the framed state record of (key, s) to dst.
func appendStateRecord(dst []byte, key presence.Key, s presence.State) ([]byte, error) {
	rec, _, err := appendStateRecordAt(dst, key, s)
	return rec, err
}

// decodeState decodes a state record of either format.
func decodeState(p []byte) (presence.Key, presence.State, error) {
	switch {
	case len(p) > 0 && p[0] == recState:
		key, rest, err := statemap.DecodeKey(p[1:])
		if err != nil {
			return key, presence.State{}, err
		}
		s, err := statemap.DecodeState(string(rest))
		if err != nil {
			return key, s, fmt.Errorf("bad state of %s: %w", key, err)
		}
		return key, s, nil
	case len(p) > 0 && p[0] == recStateJSON:
		return decodeStateJSON(p)
	}
	return presence.Key{}, presence.State{}, errors.New("not a state record")
}

// replay is replayRecords of decoded records: it calls fn with each (key,
// state) of the segment.
func replay(r io.Reader, fn func(presence.Key, presence.State)) (int64, error) {
	return replayRecords(r, func(p []byte) error {
		key, s, err := decodeState(p)
		if err != nil {
			return err
		}
		fn(key, s)
		return nil
	})
}
