package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// within reports whether got is within rel (relative) of want.
func within(got, want time.Duration, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)
}

func TestHistogramQuantilesUniform(t *testing.T) {
	var h Histogram
	// 1 µs .. 10,000 µs, each once: the q-quantile is q*10,000 µs.
	for i := 1; i <= 10_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.50, 5000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{0.999, 9990 * time.Microsecond},
		{1, 10_000 * time.Microsecond},
	} {
		if got := h.Quantile(tc.q); !within(got, tc.want, 0.01) {
			t.Errorf("Quantile(%v) = %v, want %v within 1%%", tc.q, got, tc.want)
		}
	}
	if h.Count() != 10_000 || h.Max() != 10*time.Millisecond {
		t.Errorf("Count, Max = %d, %v", h.Count(), h.Max())
	}
	if got := h.Mean(); !within(got, 5000500*time.Nanosecond, 0.001) {
		t.Errorf("Mean = %v", got)
	}
}

// TestHistogramTail checks the nearest rank on a distribution whose tail
// the percentiles must find: 990 fast requests and 10 slow ones.
func TestHistogramTail(t *testing.T) {
	var h Histogram
	for range 990 {
		h.Record(time.Millisecond)
	}
	for range 10 {
		h.Record(100 * time.Millisecond)
	}
	if got := h.Quantile(0.99); !within(got, time.Millisecond, 0.01) {
		t.Errorf("p99 = %v, want 1ms: the 990th of 1000 values is fast", got)
	}
	if got := h.Quantile(0.991); !within(got, 100*time.Millisecond, 0.01) {
		t.Errorf("p99.1 = %v, want 100ms", got)
	}
	if got := h.Quantile(0.999); !within(got, 100*time.Millisecond, 0.01) {
		t.Errorf("p99.9 = %v, want 100ms", got)
	}
}

// TestHistogramAgainstSort compares with exact nearest-rank quantiles of
// random log-normal latencies, merged from several histograms.
func TestHistogramAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	parts := make([]Histogram, 4)
	var all []time.Duration
	for i := range 50_000 {
		d := time.Duration(math.Exp(r.NormFloat64()*1.5+13)) + 1 // ~0.4 ms median, long tail
		parts[i%len(parts)].Record(d)
		all = append(all, d)
	}
	var h Histogram
	for i := range parts {
		h.Merge(&parts[i])
	}
	slices.Sort(all)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		rank := int(math.Ceil(q * float64(len(all))))
		want := all[rank-1]
		if got := h.Quantile(q); !within(got, want, 0.01) {
			t.Errorf("Quantile(%v) = %v, exact %v: more than 1%% off", q, got, want)
		}
	}
	if h.Count() != uint64(len(all)) || h.Max() != all[len(all)-1] {
		t.Errorf("merged Count, Max = %d, %v; want %d, %v", h.Count(), h.Max(), len(all), all[len(all)-1])
	}
}

// TestHistogramNearestRank checks the rank rounds up: the median of three
// values is the second, and p99 of a hundred is the 99th.
func TestHistogramNearestRank(t *testing.T) {
	var h Histogram
	for _, ms := range []int{3, 1, 2} {
		h.Record(time.Duration(ms) * time.Millisecond)
	}
	if got := h.Quantile(0.5); !within(got, 2*time.Millisecond, 0.01) {
		t.Errorf("median of 1, 2, 3 ms = %v", got)
	}
	if got := h.Quantile(0.34); !within(got, 2*time.Millisecond, 0.01) {
		t.Errorf("0.34-quantile of 1, 2, 3 ms = %v, want the second", got)
	}
	var g Histogram
	for i := 1; i <= 100; i++ {
		g.Record(time.Duration(i) * time.Millisecond)
	}
	if got := g.Quantile(0.985); !within(got, 99*time.Millisecond, 0.01) {
		t.Errorf("0.985-quantile of 1..100 ms = %v, want 99ms", got)
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Error("empty histogram not zero")
	}
	h.Record(-time.Second) // clamped to 0
	h.Record(time.Hour)    // beyond the last bucket
	if got := h.Quantile(1); got != time.Hour {
		t.Errorf("max quantile = %v, want the exact maximum", got)
	}
	for v := int64(0); v < 1<<20; v = v*3/2 + 1 {
		i := bucketOf(v)
		lo, width := bucketBounds(i)
		if v < lo || v >= lo+width {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, lo, lo+width)
		}
		if width > 1 && float64(width)/float64(lo) > 1.0/subCount+1e-9 {
			t.Fatalf("bucket %d too wide: %d at %d", i, width, lo)
		}
	}
	if bucketOf(1<<62) != nBuckets-1 {
		t.Errorf("huge value in bucket %d, want the last, %d", bucketOf(1<<62), nBuckets-1)
	}
}
