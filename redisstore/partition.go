package redisstore

import (
	"hash/fnv"
	"strconv"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// Partitions is the number of partitions users are hashed into. It is fixed
// for a keyspace (recorded in its meta hash): changing it is a migration.
const Partitions = 128

// slotCount is the number of Redis Cluster hash slots.
const slotCount = 16384

// crc16 is Redis Cluster's key hash (CRC-16/XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotOf returns the hash slot of a hash tag.
func slotOf(tag string) int { return int(crc16(tag)) % slotCount }

// makeTags returns the hash tag of each partition: short base-36 strings
// chosen so that partition p's slot lies in the p-th of Partitions equal
// ranges of the slot space. Redis Cluster assigns contiguous slot ranges to
// masters, so every master gets an equal share of partitions whatever their
// number. The choice is deterministic (the first fitting candidate in
// order), so every node computes the same tags; a test pins them.
func makeTags() [Partitions]string {
	var tags [Partitions]string
	left := Partitions
	const width = slotCount / Partitions
	for n := int64(0); left > 0; n++ {
		cand := strconv.FormatInt(n, 36)
		p := slotOf(cand) / width
		if tags[p] == "" {
			tags[p] = cand
			left--
		}
	}
	return tags
}

// memberOf returns the compact name of a user inside its partition: the
// codec's encoding of the key (GUIDs as 16 bytes each).
func memberOf(key presence.Key) string {
	return string(statemap.AppendKey(make([]byte, 0, 40), key))
}

// partitionOf returns the partition of a member: FNV-1a of its bytes,
// modulo Partitions. Fixed forever for a keyspace.
func partitionOf(member string) int {
	h := fnv.New64a()
	h.Write([]byte(member))
	return int(h.Sum64() % Partitions)
}

// rendezvous returns the weight of node for partition p; the live node with
// the highest weight should own p.
func rendezvous(node string, p int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0, byte(p), byte(p >> 8)})
	x := h.Sum64()
	// A finalizer (splitmix64's) so that near-equal inputs spread.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
