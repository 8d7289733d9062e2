package filestore

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	presence "github.com/presenced/presenced"
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
	// recState: uvarint len(tenant), tenant, uvarint len(user), user, then
	// the JSON of the user's State after the update.
	recState = 'S'
	// recSnapHeader opens a snapshot: snapshotMagic, then uvarint of the
	// first log segment not covered by the snapshot.
	recSnapHeader = 'H'
	// recSnapEnd closes a snapshot: uvarint of the number of state records.
	recSnapEnd = 'E'
)

const snapshotMagic = "presenced-snapshot/1"

func crc32c(b ...[]byte) uint32 {
	t := crc32.MakeTable(crc32.Castagnoli)
	var c uint32
	for _, p := range b {
		c = crc32.Update(c, t, p)
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

// appendStateRecord appends the framed state record of (key, s) to dst.
func appendStateRecord(dst []byte, key presence.Key, s presence.State) ([]byte, error) {
	js, err := json.Marshal(s)
	if err != nil {
		return dst, fmt.Errorf("filestore: encode state of %s: %w", key, err)
	}
	dst, start := beginRecord(dst)
	dst = append(dst, recState)
	dst = binary.AppendUvarint(dst, uint64(len(key.Tenant)))
	dst = append(dst, key.Tenant...)
	dst = binary.AppendUvarint(dst, uint64(len(key.User)))
	dst = append(dst, key.User...)
	dst = append(dst, js...)
	return finishRecord(dst, start)
}

// appendRecord appends a framed record of payload.
func appendRecord(dst []byte, payload []byte) ([]byte, error) {
	dst, start := beginRecord(dst)
	dst = append(dst, payload...)
	return finishRecord(dst, start)
}

// decodeState decodes a recState payload.
func decodeState(p []byte) (presence.Key, presence.State, error) {
	var key presence.Key
	var s presence.State
	if len(p) == 0 || p[0] != recState {
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

// replay reads a log segment from r and calls fn with each (key, state) it
// holds, in order. It returns the length of the valid prefix of the input
// and: nil when the whole input is valid; an error wrapping ErrCorrupt at
// the first damaged record (fn has then been called for exactly the records
// of the valid prefix); or an I/O error from r.
func replay(r io.Reader, fn func(presence.Key, presence.State)) (int64, error) {
	return readRecords(r, func(off int64, p []byte) error {
		key, s, err := decodeState(p)
		if err != nil {
			return corruptError(off, err.Error())
		}
		fn(key, s)
		return nil
	})
}

// readSnapshot reads a whole snapshot: its header, its state records and
// its end record, strictly. It returns the first log segment the snapshot
// does not cover.
func readSnapshot(r io.Reader, fn func(presence.Key, presence.State)) (next uint64, err error) {
	var (
		sawHeader, sawEnd bool
		count             uint64
	)
	_, err = readRecords(r, func(off int64, p []byte) error {
		switch {
		case sawEnd:
			return corruptError(off, "record after the end of the snapshot")
		case !sawHeader:
			if len(p) < 1+len(snapshotMagic) || p[0] != recSnapHeader || string(p[1:1+len(snapshotMagic)]) != snapshotMagic {
				return corruptError(off, "missing snapshot header")
			}
			v, k := binary.Uvarint(p[1+len(snapshotMagic):])
			if k <= 0 || 1+len(snapshotMagic)+k != len(p) {
				return corruptError(off, "bad snapshot header")
			}
			next, sawHeader = v, true
		case p[0] == recSnapEnd:
			v, k := binary.Uvarint(p[1:])
			if k <= 0 || 1+k != len(p) || v != count {
				return corruptError(off, fmt.Sprintf("bad snapshot end (%d records read)", count))
			}
			sawEnd = true
		default:
			key, s, err := decodeState(p)
			if err != nil {
				return corruptError(off, err.Error())
			}
			fn(key, s)
			count++
		}
		return nil
	})
	if err == nil && !sawEnd {
		err = corruptError(0, "snapshot has no end record")
	}
	return next, err
}

func snapshotHeader(next uint64) []byte {
	p := append([]byte{recSnapHeader}, snapshotMagic...)
	return binary.AppendUvarint(p, next)
}

func snapshotEnd(count uint64) []byte {
	return binary.AppendUvarint([]byte{recSnapEnd}, count)
}
