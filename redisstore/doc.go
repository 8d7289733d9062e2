// Package redisstore keeps presenced's users in Redis, so that any number
// of stateless presenced nodes started on one Redis are one service.
//
// # Client
//
// It uses github.com/redis/rueidis: concurrent calls are pipelined on a
// shared connection automatically, DoMulti sends a batch that spans
// Cluster slots to each slot's node in parallel, and SSUBSCRIBE is
// supported in Cluster. Measured on the project's 2-core machine with 64
// goroutines doing the same hash-and-sorted-set update, rueidis ran
// 36.6k updates/s by DoMulti and 33.6k by Lua script, go-redis v9 25.2k
// by pipeline and 20.0k by script (about 1.45x in rueidis's favour), and
// go-redis's automatic pipelining is still marked experimental. Centrifugo's
// Redis engine uses rueidis with the same settings as here: retries off
// (DisableRetry; otherwise a read is retried until its context ends) and a
// deadline on every call, so a node answers 503 at once when Redis is gone.
//
// # Key layout
//
// Users hash into Partitions = 128 partitions (FNV-1a of the user's
// compact key, fixed forever). Every key of partition p carries the hash
// tag {tag(p)}: a short string chosen so that the 128 tags' Cluster slots
// lie in 128 equal ranges, so any number of masters with contiguous slot
// ranges gets an equal share. One user's keys share one slot, so the
// compare-and-set script touches a single slot: no CROSSSLOT, ever.
//
//	pd:{tag}:u:<member>  string  8-byte big-endian revision ‖ state (statemap format 1)
//	pd:{tag}:due         zset    member → Due in Unix µs, rounded up
//	pd:{tag}:ob          set     members whose state holds undelivered notices
//	pd:{tag}:lease       string  "<node-id>:<token>", PX LeaseTTL: the owner of the partition
//	pd:{tag}:ev          shard channel of the partition's change events
//	pd:{m}:meta          hash    format, partitions (checked at start)
//	pd:{m}:nodes         zset    node id → last heartbeat, by Redis's clock
//	pd:{m}:key:<name>    string  keys shared by every node (SharedKey)
//	pd:{m}:clock         string  the shared test clock, Unix ns
//	pd:{rl:<app>:<tenant>}  hash    the shared limiter: 1 s slot → admissions
//
// <member> is the user's key as the state codec writes it (tenant and user
// GUIDs as 16 bytes each); "pd" is Options.Prefix. A user with one session
// and a preferred presence takes 342 bytes of Redis memory (used_memory
// 343.7 MB for 1,000,000 such users on Redis 7.0.15; TestMemory).
//
// # Updates
//
// Update reads the user (GET), runs the caller's function (the domain's
// Step) in Go on a copy, and sends a Lua script that compares the stored
// revision and, when it matches, writes the new value, the user's due
// entry, its membership in the outbox set, and publishes the change event,
// atomically. When another writer came first the script returns the
// current value and the update runs again on it, until UpdateTimeout (10 s)
// or the caller's context ends; inside one node a striped mutex makes
// writers of one user queue instead of racing. A script whose outcome is
// unknown (the connection failed after it was sent) is never resent: the
// caller gets an error matching presence.ErrUnavailable, as filestore
// reports an unknown commit. The state machine is never written in Lua:
// Lua's numbers are doubles, which cannot hold Unix nanoseconds.
//
// # Timers and ownership
//
// Each node heartbeats every LeaseTTL/3 (1 s) into pd:{m}:nodes with
// Redis's TIME; the live nodes are those seen within LeaseTTL (3 s). Every
// node computes rendezvous hashing of each partition over the live nodes
// and acquires (SET NX PX) or renews the partitions it wins; it keeps one
// it holds until the winner has been live for two rounds, then stops acting
// on it and releases it, so a hand-over leaves no gap and no overlap. A
// node acts on a partition only until its last successful renewal's send
// time + LeaseTTL − 0.5 s on its own monotonic clock. Due returns users
// only from the partitions this node owns; a dead node's partitions are
// taken within about LeaseTTL + 1 s (measured ~3 s in TestLeases). Two
// owners at once (a paused process) cannot fire a change twice: the
// compare-and-set makes the second Tick see nothing due.
//
// # Durability
//
// An acknowledged write is in Redis's append-only file and fsynced when
// Redis runs with appendonly yes and appendfsync always (with always,
// every reply leaves only after the fsync); maxmemory-policy must be
// noeviction, or Redis may drop users. At connect the store reads these
// with CONFIG GET from every master and logs an error (no AOF, eviction)
// or a warning (appendfsync not always; a setting it may not read) when
// they cannot keep that promise; ServerConfig reports what it found. With
// replicas, Options.WaitReplicas makes each write wait for that many
// replicas (WAIT in the same pipeline, on a connection of its own) and
// fail as unavailable when fewer acknowledged; without it an asynchronous
// replica promoted by a failover may lack the last acknowledged writes.
//
// # Faults
//
// Every call has a deadline (OpTimeout, 5 s). Connection errors, timeouts
// and the replies LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY,
// BUSY, MISCONF and OOM are returned wrapped by presence.Unavailable, which
// the HTTP layer answers 503 with Retry-After. Open does not fail when
// Redis is down: the store answers unavailable (and Ping fails, for
// /readyz) and keeps connecting in the background. Connections broken by
// a Redis restart come back by themselves; each may fail one call first.
//
// # Events and what pub/sub loses
//
// A change of a user's visible pair is published by the same script that
// writes it, on the partition's shard channel, with the writing node's id.
// Events delivers those of other nodes. Redis pub/sub is at-most-once:
// events published while a node is not subscribed (its connection broke,
// Redis restarted, a Cluster failover) are lost, and nothing replays them.
// They feed live streams, which start with the current presence, and wake
// the deliverer; the durable record of a change is the state and the
// notices in its outbox, which a partition's owner finds with
// PendingOutboxes.
package redisstore
