package filestore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// ErrCorrupt is wrapped by the errors that report a damaged log or snapshot.
var ErrCorrupt = errors.New("filestore: corrupt data")

// The framing of every record, in the log and in the snapshot:
//
//	crc32c  uint32 little-endian, over the length field and the payload
//	length  uint32 little-endian, of the payload
//	payload length bytes; the first byte is the record type
const (
	recHeaderSize = 8
	// maxPayload bounds one record; a longer length field is corruption.
	maxPayload = 512 << 10
	// maxBatchBytes bounds what the writer writes with one write and one
	// fsync. Only the last batch can be torn by a crash, so damage within
	// maxBatchBytes of the end of the last segment is a torn tail, and
	// damage further back is corruption.
	maxBatchBytes = 1 << 20
)

// Record types: the first byte of a payload.
const (
	// recState is a state record: the key, written by statemap.AppendKey
	// (tenant, then user), then the user's whole State after the update,
	// written by statemap.AppendState (a format byte, then the state).
	recState = 'U'
	// recStateJSON is the state record of the first format, still read
	// (from data directories written before the binary format) but no
	// longer written: uvarint len(tenant), tenant, uvarint len(user),
	// user, then the JSON of the State.
	recStateJSON = 'S'
	// recSnapHeader opens a snapshot: snapshotMagic, uvarint of the first
	// log segment not covered by the snapshot, then uvarint of the number
	// of users when the snapshot started (a hint for sizing the map; the
	// end record has the exact count). A snapshot of the first format has
	// snapshotMagic1 and no hint.
	recSnapHeader = 'H'
	// recSnapEnd closes a snapshot: uvarint of the number of state records.
	recSnapEnd = 'E'
)

const (
	snapshotMagic  = "presenced-snapshot/2"
	snapshotMagic1 = "presenced-snapshot/1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b ...[]byte) uint32 {
	var c uint32
	for _, p := range b {
		c = crc32.Update(c, castagnoli, p)
	}
	return c
}

// beginRecord appends room for a record header to dst and returns the
// offset of the record; finishRecord fills the header in.
func beginRecord(dst []byte) ([]byte, int) {
	return append(dst, make([]byte, recHeaderSize)...), len(dst)
}

func finishRecord(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start - recHeaderSize
	if n > maxPayload {
		return dst[:start], fmt.Errorf("filestore: record of %d bytes exceeds the limit of %d", n, maxPayload)
	}
	h := dst[start : start+recHeaderSize]
	binary.LittleEndian.PutUint32(h[4:], uint32(n))
	binary.LittleEndian.PutUint32(h[:4], crc32c(h[4:], dst[start+recHeaderSize:]))
	return dst, nil
}

// beginStateRecord begins a state record of key in dst, up to its state,
// and returns where the record starts, for finishRecord.
func beginStateRecord(dst []byte, key presence.Key) ([]byte, int) {
	dst, start := beginRecord(dst)
	dst = append(dst, recState)
	return statemap.AppendKey(dst, key), start
}

// appendStateRecordAt appends the framed state record of (key, s) to dst
// and returns where in the result the state's encoding starts: it runs to
// the end, so the caller can publish the very bytes it writes instead of
// encoding the state again.
func appendStateRecordAt(dst []byte, key presence.Key, s presence.State) ([]byte, int, error) {
	dst, start := beginStateRecord(dst, key)
	at := len(dst)
	rec, err := finishRecord(statemap.AppendState(dst, &s), start)
	return rec, at, err
}

// appendEncodedRecord appends the framed state record of key and enc, a
// state encoded by statemap.AppendState.
func appendEncodedRecord(dst []byte, key presence.Key, enc string) ([]byte, error) {
	dst, start := beginStateRecord(dst, key)
	return finishRecord(append(dst, enc...), start)
}

// appendRecord appends a framed record of payload.
func appendRecord(dst []byte, payload []byte) ([]byte, error) {
	dst, start := beginRecord(dst)
	dst = append(dst, payload...)
	return finishRecord(dst, start)
}

// restoreRecord stores the state of a state record, of either format, in
// m with Restore.
func restoreRecord(m *statemap.Map, p []byte) error {
	switch {
	case len(p) > 0 && p[0] == recState:
		key, rest, err := m.DecodeKey(p[1:])
		if err != nil {
			return err
		}
		if err := m.Restore(key, rest); err != nil {
			return fmt.Errorf("bad state of %s: %w", key, err)
		}
		return nil
	case len(p) > 0 && p[0] == recStateJSON:
		key, s, err := decodeStateJSON(p)
		if err != nil {
			return err
		}
		m.RestoreState(key, s)
		return nil
	}
	return errors.New("not a state record")
}

// decodeStateJSON decodes a recStateJSON payload.
func decodeStateJSON(p []byte) (presence.Key, presence.State, error) {
	var key presence.Key
	var s presence.State
	if len(p) == 0 || p[0] != recStateJSON {
		return key, s, errors.New("not a state record")
	}
	p = p[1:]
	var ok bool
	if key.Tenant, p, ok = readString(p); !ok {
		return key, s, errors.New("bad tenant")
	}
	if key.User, p, ok = readString(p); !ok {
		return key, s, errors.New("bad user")
	}
	if err := json.Unmarshal(p, &s); err != nil {
		return key, s, fmt.Errorf("bad state: %w", err)
	}
	return key, s, nil
}

func readString(p []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return "", p, false
	}
	p = p[k:]
	return string(p[:n]), p[n:], true
}

// corruptError reports damage at an offset.
func corruptError(off int64, reason string) error {
	return fmt.Errorf("%w at offset %d: %s", ErrCorrupt, off, reason)
}

// readRecords calls fn with the payload of every record read from r, in
// order, and returns the offset just past the last good record. It returns
// a nil error at a clean end of input; an error wrapping ErrCorrupt when a
// record is truncated or damaged (or fn rejects it with an error wrapping
// ErrCorrupt); and other errors, from r or fn, as they are. The payload
// passed to fn is only valid during the call.
func readRecords(r io.Reader, fn func(off int64, payload []byte) error) (int64, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var off int64
	var hdr [recHeaderSize]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return off, nil
			case errors.Is(err, io.ErrUnexpectedEOF):
				return off, corruptError(off, "truncated record header")
			}
			return off, err
		}
		n := binary.LittleEndian.Uint32(hdr[4:])
		if n == 0 || n > maxPayload {
			return off, corruptError(off, fmt.Sprintf("bad record length %d", n))
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return off, corruptError(off, "truncated record")
			}
			return off, err
		}
		if crc32c(hdr[4:], payload) != binary.LittleEndian.Uint32(hdr[:4]) {
			return off, corruptError(off, "checksum mismatch")
		}
		if err := fn(off, payload); err != nil {
			return off, err
		}
		off += int64(recHeaderSize + n)
	}
}

// replayRecords reads a log segment from r and calls fn with the payload
// of each record, in order; an error from fn is reported as damage of that
// record. It returns the length of the valid prefix of the input and: nil
// when the whole input is valid; an error wrapping ErrCorrupt at the first
// damaged record (fn has then been called for exactly the records of the
// valid prefix); or an I/O error from r.
func replayRecords(r io.Reader, fn func(payload []byte) error) (int64, error) {
	return readRecords(r, func(off int64, p []byte) error {
		if err := fn(p); err != nil {
			return corruptError(off, err.Error())
		}
		return nil
	})
}

// replayInto replays a log segment into m (see replayRecords).
func replayInto(r io.Reader, m *statemap.Map) (int64, error) {
	return replayRecords(r, func(p []byte) error { return restoreRecord(m, p) })
}

func snapshotHeader(next, users uint64) []byte {
	p := append([]byte{recSnapHeader}, snapshotMagic...)
	p = binary.AppendUvarint(p, next)
	return binary.AppendUvarint(p, users)
}

// parseSnapshotHeader parses a header record of either format; isJSON says
// it is of the first format, whose state records are JSON.
func parseSnapshotHeader(p []byte) (next, users uint64, isJSON bool, err error) {
	if len(p) == 0 || p[0] != recSnapHeader {
		return 0, 0, false, errors.New("missing snapshot header")
	}
	p = p[1:]
	isJSON = bytes.HasPrefix(p, []byte(snapshotMagic1))
	if !isJSON && !bytes.HasPrefix(p, []byte(snapshotMagic)) {
		return 0, 0, false, errors.New("missing snapshot header")
	}
	p = p[len(snapshotMagic):] // both magics have one length
	next, k := binary.Uvarint(p)
	if k <= 0 {
		return 0, 0, false, errors.New("bad snapshot header")
	}
	p = p[k:]
	if !isJSON {
		if users, k = binary.Uvarint(p); k <= 0 {
			return 0, 0, false, errors.New("bad snapshot header")
		}
		p = p[k:]
	}
	if len(p) != 0 {
		return 0, 0, false, errors.New("bad snapshot header")
	}
	return next, users, isJSON, nil
}

func snapshotEnd(count uint64) []byte {
	return binary.AppendUvarint([]byte{recSnapEnd}, count)
}
