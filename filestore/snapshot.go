package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// snapChunkSize is the size of the buffers a snapshot is read in. A chunk
// always has room for the largest record after the incomplete one carried
// over from the previous chunk.
const snapChunkSize = 2*maxPayload + 2*recHeaderSize

// minStateRecord is less than the size of any state record: framing,
// type, two empty strings, the shortest state.
const minStateRecord = recHeaderSize + 1 + 2 + 6

// snapshotWorkers is how many goroutines decode a snapshot: one a core, as
// decoding (not reading) is the work of Open.
func snapshotWorkers() int { return min(max(runtime.GOMAXPROCS(0), 1), 8) }

// writeSnapshot writes a snapshot of m covering the segments below next.
func writeSnapshot(ctx context.Context, w io.Writer, m *statemap.Map, next uint64) (count uint64, size int64, err error) {
	var buf []byte
	flush := func(force bool) error {
		if len(buf) < 1<<20 && !force {
			return nil
		}
		n, err := w.Write(buf)
		size += int64(n)
		buf = buf[:0]
		return err
	}
	if buf, err = appendRecord(buf, snapshotHeader(next, uint64(m.Len()))); err != nil {
		return 0, 0, err
	}
	err = m.SnapshotEncoded(ctx, func(k presence.Key, enc string) error {
		var err error
		if buf, err = appendEncodedRecord(buf, k, enc); err != nil {
			return err
		}
		count++
		return flush(false)
	})
	if err != nil {
		return 0, 0, err
	}
	if buf, err = appendRecord(buf, snapshotEnd(count)); err != nil {
		return 0, 0, err
	}
	return count, size, flush(true)
}

// snapChunk is a run of whole state records of a snapshot, at offset off.
type snapChunk struct {
	off  int64
	recs []byte
	buf  []byte // the whole buffer, to give back
}

// snapReader reads a snapshot into a Map: this goroutine reads the file in
// chunks and finds the records' boundaries; workers check the records'
// checksums and Restore them, each a chunk at a time. A snapshot holds
// each key once, so the order of the chunks does not matter.
type snapReader struct {
	m *statemap.Map

	failed atomic.Bool
	mu     sync.Mutex
	err    error // the error at the lowest offset
	errOff int64
	count  atomic.Uint64 // state records restored
	isJSON bool          // the header is of the JSON format
}

func (sr *snapReader) fail(off int64, err error) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.err == nil || off < sr.errOff {
		sr.err, sr.errOff = err, off
	}
	sr.failed.Store(true)
}

// restore checks and restores the records of c.
func (sr *snapReader) restore(c snapChunk) {
	p, off := c.recs, c.off
	var n uint64
	for len(p) > 0 {
		size := int(binary.LittleEndian.Uint32(p[4:])) // checked by the reader
		payload := p[recHeaderSize : recHeaderSize+size]
		if crc32c(p[4:recHeaderSize], payload) != binary.LittleEndian.Uint32(p) {
			sr.fail(off, corruptError(off, "checksum mismatch"))
			return
		}
		if err := restoreRecord(sr.m, payload); err != nil {
			sr.fail(off, corruptError(off, err.Error()))
			return
		}
		n++
		p = p[recHeaderSize+size:]
		off += int64(recHeaderSize + size)
	}
	sr.count.Add(n)
}

// readSnapshot reads a whole snapshot of size bytes (-1 if unknown) into
// m, strictly: its header, its state records and its end record, with
// workers goroutines restoring the states. It returns the first log
// segment the snapshot does not cover, and whether the snapshot is of the
// JSON format. The due index of m is left to rebuild.
func readSnapshot(ctx context.Context, r io.Reader, size int64, workers int, m *statemap.Map) (next uint64, isJSON bool, err error) {
	sr := &snapReader{m: m}
	// Up to workers+2 buffers: one being read into, one for each worker,
	// one queued. They are made as needed: a small snapshot takes one.
	free := make(chan []byte, workers+2)
	made := 0
	getBuf := func() []byte {
		select {
		case b := <-free:
			return b
		default:
		}
		if made < workers+2 {
			made++
			return make([]byte, snapChunkSize)
		}
		return <-free
	}
	work := make(chan snapChunk, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range work {
				if !sr.failed.Load() {
					sr.restore(c)
				}
				free <- c.buf
			}
		})
	}
	next, endCount, sawEnd, err := sr.read(ctx, r, size, getBuf, work)
	close(work)
	wg.Wait()
	switch {
	case err != nil:
		return 0, false, err
	case sr.err != nil:
		return 0, false, sr.err
	case !sawEnd:
		return 0, false, corruptError(0, "snapshot has no end record")
	case sr.count.Load() != endCount:
		return 0, false, corruptError(0, fmt.Sprintf("bad snapshot end (%d records read, %d written)", sr.count.Load(), endCount))
	}
	return next, sr.isJSON, nil
}

// read is the reading goroutine of readSnapshot. It reports damage it
// finds itself with sr.fail, and returns other errors (I/O, ctx).
func (sr *snapReader) read(ctx context.Context, r io.Reader, size int64, getBuf func() []byte, work chan<- snapChunk) (next, endCount uint64, sawEnd bool, err error) {
	var (
		off       int64 // of buf[0] in the snapshot
		sawHeader bool
		eof       bool
	)
	whole := getBuf()
	buf := whole[:0]
	for !eof && !sr.failed.Load() {
		if err := ctx.Err(); err != nil {
			return 0, 0, false, err
		}
		n, rerr := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			eof = true
		case rerr != nil:
			return 0, 0, false, rerr
		}
		// The state records in buf[from:to] go to the workers; at is the
		// next record.
		from, to, at := 0, 0, 0
		for at < len(buf) {
			o := off + int64(at)
			if sawEnd {
				sr.fail(o, corruptError(o, "record after the end of the snapshot"))
				return 0, 0, false, nil
			}
			if len(buf)-at < recHeaderSize {
				break
			}
			n := binary.LittleEndian.Uint32(buf[at+4:])
			if n == 0 || n > maxPayload {
				sr.fail(o, corruptError(o, fmt.Sprintf("bad record length %d", n)))
				return 0, 0, false, nil
			}
			end := at + recHeaderSize + int(n)
			if end > len(buf) {
				break
			}
			payload := buf[at+recHeaderSize : end]
			if sawHeader && payload[0] != recSnapEnd {
				to, at = end, end // a state record, for the workers
				continue
			}
			if crc32c(buf[at+4:at+recHeaderSize], payload) != binary.LittleEndian.Uint32(buf[at:]) {
				sr.fail(o, corruptError(o, "checksum mismatch"))
				return 0, 0, false, nil
			}
			if !sawHeader {
				var users uint64
				var perr error
				if next, users, sr.isJSON, perr = parseSnapshotHeader(payload); perr != nil {
					sr.fail(o, corruptError(o, perr.Error()))
					return 0, 0, false, nil
				}
				if size >= 0 { // a hint, so bounded by what the file can hold
					sr.m.Reserve(int(min(users, uint64(size)/minStateRecord)))
				}
				sawHeader, from, to = true, end, end
			} else {
				v, k := binary.Uvarint(payload[1:])
				if k <= 0 || 1+k != len(payload) {
					sr.fail(o, corruptError(o, "bad snapshot end"))
					return 0, 0, false, nil
				}
				endCount, sawEnd = v, true
			}
			at = end
		}
		if eof && at < len(buf) {
			o := off + int64(at)
			sr.fail(o, corruptError(o, "truncated record"))
			return 0, 0, false, nil
		}
		// Hand the state records over and carry the incomplete record
		// over to the next chunk.
		if from < to {
			work <- snapChunk{off: off + int64(from), recs: buf[from:to], buf: whole}
			whole = getBuf()
			buf = whole[:copy(whole, buf[at:])]
		} else {
			buf = buf[:copy(buf, buf[at:])]
		}
		off += int64(at)
	}
	return next, endCount, sawEnd, nil
}
