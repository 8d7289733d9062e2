// Package filestore is the default durable, embedded presence.Store: every
// user's State served from memory, made durable by a group-committed
// append-only log of its own, compacted into snapshots.
//
// # Design
//
// The serving copy of every State lives in memory, in the sharded map of
// internal/statemap: Get and Due never touch the disk. Update takes the
// user's stripe lock, runs fn on a copy, encodes the new State as a log
// record and queues it. One writer goroutine takes everything queued (up to
// 1 MiB), writes it with one write(2) and starts an fsync covering it, then
// wakes every Update of the batch once that fsync has returned. Records
// queued while an fsync runs are written at once and form the next batch,
// so the next fsync starts the moment the running one ends: that is the
// group commit, and with 64 concurrent writers each fsync carries about 30
// records. With Options.SyncDepth 2 (not the default), while there are
// few writers (the last fsync's records and those waiting, under 24, e.g.
// 16 writers) a second fsync may run beside the first, so that a record
// does not wait for an fsync that started before it was written. Each
// fsync uses a descriptor of its own, since Linux reports a failed
// writeback once per open file description. At most 1 MiB is ever
// written and not yet durable.
//
// The "fsync" is fdatasync(2) on Linux (a full fsync elsewhere), and the
// writer extends the segment with zeros 4 MiB at a time ahead of its
// records (prefill): a record is written over blocks that already exist,
// into a file whose size does not change, so that making it durable
// flushes its data without committing the file system's journal. On this
// project's machine that cut the mean commit by about a fifth under load.
// fdatasync still commits the size when it did change (right after an
// extension), so durability never depends on the prefill; the zeros after
// the last record of a segment are read as never written. A clean Close
// cuts them off. One thing the prefill changes after a power loss (not
// after kill -9): if the disk stored a later sector of the last batch but
// not an earlier one, the log reads as records, zeros, then valid records
// that were never acknowledged (a sync that made one of them durable
// stored the earlier sector before it returned), where appending to a
// growing file would have hidden both behind the old size. Open takes
// such a sector of zeros before the next valid record, within 1 MiB of
// the end, for a torn write (see tornTail). Only once its record is
// durable does an Update publish the new State to memory, release the
// stripe lock and return. So a reader never sees a State that a crash could
// take back, and every acknowledged write survives kill -9 and power loss
// (as far as fsync is honest).
//
// The directory holds:
//
//	LOCK                       flock(2)ed while a Store has the directory open
//	snapshot                   every State, as of some point in the log
//	00000000000000000007.log   log segments, numbered; appended to in order
//	                           (records, then zeros written ahead of them)
//
// Every record, in the log and in the snapshot, is framed as a CRC-32C (of
// what follows) and a length, both 4 bytes little-endian, then the payload:
// a type byte, then for a state record the key and the user's whole State
// after the update, in the compact binary encoding described under Format.
// Whole states rather than deltas make replay trivial and idempotent: the
// last record of a key wins.
//
// Compaction: when the current segment reaches Options.CompactBytes
// (64 MiB by default) the writer starts a new segment and a background
// goroutine writes a snapshot of the map, covering every segment before
// the new one, to snapshot.tmp; fsyncs it; renames it over snapshot; fsyncs
// the directory; and only then deletes the covered segments. Writers are
// never stopped: the snapshot copies one shard at a time under that
// shard's stripe lock, which also waits for any write to the old segments
// that is durable but not yet published. The snapshot may include states
// newer than its segment boundary; replaying the later segments over it
// is harmless since records are whole states. Close compacts once more, so
// the next Open reads just the snapshot.
//
// Open reads the snapshot, deletes segments it covers (left by a crash
// between the rename and the deletes), replays the remaining segments in
// order and rebuilds the due index. The snapshot is read in chunks of
// whole records that one goroutine a core checks and stores: each state's
// encoding is validated and kept as it is, never decoded into Go values,
// in a map sized from the count in the snapshot's header; the due index
// is then built in one pass. Zeros from a segment's last valid record to
// its end are the prefill, not damage. A damaged record in the last
// segment within 1 MiB (the largest batch) of the end of its data (its
// last byte that is not zero), with no valid record after it (or a sector
// of zeros before the next valid one, above), is
// a write torn by a crash: it was never acknowledged, so the tail is
// truncated away, durably, and a warning logged. A damaged record followed
// by valid ones is not a torn write, however near the end: truncating
// there would destroy acknowledged records. That, damage anywhere else, a
// missing segment, or a damaged snapshot is an error wrapping ErrCorrupt
// that names the file and the offset: the store refuses to open rather
// than silently lose acknowledged data, and changes nothing. Repair
// (`presenced repair`) then rewrites each damaged file with every valid
// record on both sides of the damage, keeping the original beside it.
//
// If a write or fsync of the log fails (a full disk), the segment is cut
// back to its durable size, so nothing of the failed batch stays behind,
// and the batch's updates fail with an error matching
// presence.ErrUnavailable (503 with Retry-After). Healthy reports the
// failure until a write succeeds again; while idle, the writer probes
// every Options.ProbeInterval (append 4 KiB, fsync, cut back), so the
// store recovers once space is freed, without a restart. The failure is
// logged at once and then at most every 10 s, as a count. Cutting back
// also makes retrying after a failed fsync honest: whatever that fsync
// left in doubt is removed, and what precedes it was made durable by
// fsyncs that succeeded.
//
// # Format
//
// The payload of a record starts with its type:
//
//	'U'  a state record: the tenant and the user, each a string of the
//	     state encoding (a canonical lower-case GUID takes 17 bytes), then
//	     the State, encoded by statemap.AppendState
//	'H'  a snapshot's header: "presenced-snapshot/2", uvarint of the first
//	     segment the snapshot does not cover, uvarint of the number of
//	     users when it was started (to size the map)
//	'E'  a snapshot's end: uvarint of the number of its state records
//	'S'  a state record of the first format (uvarint-length tenant and
//	     user, then the State as JSON), in snapshots headed
//	     "presenced-snapshot/1" (no user count); read, never written
//
// The state encoding (internal/statemap's codec.go has the grammar)
// starts with a format byte, 1 today, so that a new format can be added
// and the old one still read. It is varints throughout: flags for the
// optional parts and booleans, counts, then the fields in a fixed order;
// strings are a code for a word of a fixed vocabulary (availabilities,
// activities, content types), 16 bytes for a GUID, or the bytes; times are
// Unix nanoseconds, the first absolute, the others as differences from
// it, with a code for the zero time and an escape for instants beyond
// int64 nanoseconds (years before 1678 or after 2262). Times are stored as
// instants: they read back in UTC, as the service's clock gives them. A
// typical state, one application session and a preferred presence, takes
// 59 bytes where its JSON took 445; with its key and framing the record
// takes 102 (it took 528).
//
// Data directories written by the JSON format open as they are: their
// snapshot and segments are read, and a snapshot of the JSON format is
// rewritten in the binary one at once by a compaction (segments are
// compacted as usual). Going back to a version that reads only JSON needs
// a data directory it wrote.
//
// # Cancellation
//
// Update honours its context while waiting for the stripe lock and for the
// group commit. If the context ends while the record is still queued, the
// record is dropped and nothing is written. If it ends while the batch is
// being written, Update returns an error wrapping the context's error,
// saying the outcome is unknown; the stripe lock then passes to the writer,
// which publishes the State if the write succeeds, so memory and disk never
// disagree.
//
// # Measurements
//
// On this project's machine (2 cores, ext4 on a virtual disk whose fsync
// takes ~0.2-0.4 ms), 64 goroutines updating their own users, states of
// one application session (62-byte records; 269 bytes as JSON), medians of
// 3 runs of
//
//	go test -run '^$' -bench UpdateParallel -benchtime 2s -count 3 ./filestore/
//
// interleaved with runs of the JSON format's version, while other load
// tests shared the machine, gave:
//
//	                        durable writes/s   p99 ack   records/fsync   disk bytes/write
//	group commit (shipped)       124,000        1.7 ms        29              206
//	one fsync per write            5,900         14 ms         1             4,160
//	no fsync (not durable)       290,000        1.4 ms         -               64
//
// and with the JSON format 85,000 (p99 2.5 ms), 5,300 and 186,000 writes/s,
// with 441, 4,390 and 300 disk bytes a write. (An earlier quiet run of the
// JSON format gave 102,000, 5,500 and 280,000: the machine's noise is as
// large as the difference, so compare only interleaved runs.)
//
// Group commit is worth ~20x here: the disk does the same few thousand
// fsyncs a second either way, and each carries ~29 records instead of one.
// The ceiling without fsync is the CPU (the map, the encoding, the
// scheduler). "disk bytes/write" is write_bytes from /proc/self/io per
// Update (the journal not included): one fsync per small record rewrites
// a whole 4 KiB page each time. Runs while other builds loaded the machine
// more gave 50k-90k writes/s for the group commit, in line with the 45k
// of DESIGN.md's hand-written log.
//
// For comparison, go.etcd.io/bbolt v1.4.3 DB.Batch, same machine, same 64
// writers and 269-byte values, in a throwaway module outside this
// repository: 5,000 writes/s (p99 16-19 ms) with the default MaxBatchSize
// of 1000, and 28,000-33,000 (p99 8-9 ms) with MaxBatchSize 64, on a
// small tree of 6,400 keys (a bbolt commit rewrites a page per touched
// leaf and branch, so it slows as the tree grows; DESIGN.md measured 11k).
// Pebble with pebble.Sync measured 53k in DESIGN.md. A log of our own
// beats both because the store needs no on-disk index at all (the
// serving copy is in memory and the disk is only read at Open), adds no
// dependency, and keeps the recovery rules in a few hundred lines that the
// tests kill -9 (TestCrash) and fuzz (FuzzReplay).
//
// The costs: all States must fit in memory, and Open reads them all. With
// a million users of one tenant, each with one application session and a
// preferred presence (BenchmarkMillionUsers, and the load tool's scale
// scenario, which drives the server over HTTP):
//
//	                               binary format   JSON format
//	Go heap in use, a user (1)     270 bytes       760 bytes
//	server RSS after populating    477 MiB         1105 MiB
//	server RSS after a restart     424 MiB         1582 MiB
//	data directory (2)             98 MiB          515 MiB
//	Open (3)                       0.7 s           9.7-19.6 s
//	restart to /readyz             1.6 s           15.5-24 s
//
// (1) HeapInuse after Open and a GC; internal/statemap says where it goes.
// (2) 102 bytes a user in the snapshot. (3) BenchmarkOpen's 100,000 users:
// 55 ms, and 610 ms with JSON. The JSON format's times vary with the
// machine's load; the binary format's RSS leaves the 1 GiB goal ample
// room. Reading a batch of 650 users
// from memory (BenchmarkGet650) takes ~0.13 ms: each state is decoded from
// its encoding, some 10-20 ns a user more than the deep copy of Go values
// it replaced.
package filestore
