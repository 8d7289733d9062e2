package main

import (
	"encoding/binary"
	presence "github.com/presenced/presenced"
	"math/rand/v2"
)

// The development tenant and application of `presenced token`.
const (
	devTenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	devApp    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
)

// Streams of the seeded generator, so users and apps never share ids.
const (
	streamUsers = 1
	streamApps  = 2
)

// newRand returns a deterministic generator for seed and stream.
func newRand(seed, stream uint64) *rand.Rand {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], stream)
	return rand.New(rand.NewChaCha8(key))
}

// guid returns a random version-4 GUID in canonical lower case.
func guid(r *rand.Rand) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:], r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], r.Uint64())
	return presence.GUIDFrom(b)
}

// userIDs returns n user GUIDs, the same for the same seed. They are 122
// random bits each, so a million of them collide with a probability below
// 1e-24: they are taken as distinct.
func userIDs(seed uint64, n int) []string {
	r := newRand(seed, streamUsers)
	out := make([]string, n)
	for i := range out {
		out[i] = guid(r)
	}
	return out
}

// appIDs returns n application ids: presenced's development app first, then
// GUIDs derived from seed.
func appIDs(seed uint64, n int) []string {
	r := newRand(seed, streamApps)
	out := []string{devApp}
	for len(out) < n {
		if g := guid(r); g != devApp {
			out = append(out, g)
		}
	}
	return out[:n]
}
