package main

import (
	"math"
	"math/bits"
	"time"
)

// The histogram keeps latencies in log-linear buckets: values below
// 2^subBits nanoseconds exactly, larger ones in 2^subBits buckets per power
// of two, so a bucket is at most 1/64 (1.6%) of its value wide and the
// midpoint it reports is within 0.8% of any value in it. Values are capped
// at 2^maxBits-1 ns (about 18 minutes).
const (
	subBits  = 6
	subCount = 1 << subBits
	maxBits  = 40
	nBuckets = subCount + (maxBits-subBits-1)*subCount + subCount
)

// Histogram records latencies with a bounded relative error in constant
// memory (18 KiB), so a ten-minute run at any rate costs the same. The zero
// Histogram is empty and ready to use. It is not safe for concurrent use:
// each worker keeps its own and they are merged at the end.
type Histogram struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v >= 1<<maxBits {
		v = 1<<maxBits - 1
	}
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	return subCount + shift*subCount + int(v>>shift) - subCount
}

// bucketBounds returns the smallest value of bucket i and its width.
func bucketBounds(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := (i - subCount) / subCount
	mantissa := int64(subCount + (i-subCount)%subCount)
	return mantissa << shift, 1 << shift
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean of the values recorded.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the q-quantile (0 < q <= 1) by the nearest-rank method:
// the smallest recorded value v such that at least q of the values are <= v,
// reported as the midpoint of its bucket and clamped to the exact minimum and
// maximum (the maximum itself is exact). It returns 0 for an empty
// histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	if rank >= h.n {
		return time.Duration(h.max) // the largest value is known exactly
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum < rank {
			continue
		}
		lo, width := bucketBounds(i)
		v := lo + (width-1)/2
		return time.Duration(min(max(v, h.min), h.max))
	}
	return time.Duration(h.max)
}
