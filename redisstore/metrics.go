package redisstore

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// Stats are the store's counters since it opened.
type Stats struct {
	// RoundTrips counts calls to Redis; Errors those that failed.
	RoundTrips uint64
	Errors     uint64
	// RoundTripSeconds is the total time of those calls.
	RoundTripSeconds float64
	// CASConflicts counts compare-and-sets lost to another writer (each
	// cost one retry).
	CASConflicts uint64
	// PartitionsOwned is how many partitions this node owns now.
	PartitionsOwned int
	// LeaseTakeovers counts partitions this node acquired.
	LeaseTakeovers uint64
}

type metrics struct {
	trips, errors, nanos, conflicts, takeovers atomic.Uint64
	owned                                      atomic.Int64

	latency    *prometheus.HistogramVec
	errorsC    *prometheus.CounterVec
	conflictsC prometheus.Counter
	takeoversC prometheus.Counter
	ownedG     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_redis_roundtrip_seconds",
			Help:    "Time of calls to Redis, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		errorsC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_redis_errors_total",
			Help: "Calls to Redis that failed, by operation.",
		}, []string{"op"}),
		conflictsC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_redis_cas_conflicts_total",
			Help: "Compare-and-set writes lost to another writer and retried.",
		}),
		takeoversC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_lease_takeovers_total",
			Help: "Partition leases this node acquired.",
		}),
		ownedG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_partitions_owned",
			Help: "Partitions whose timers and deliveries this node owns.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.errorsC, m.conflictsC, m.takeoversC, m.ownedG)
	}
	return m
}

// roundTrip records one round trip and counts its error.
func (m *metrics) roundTrip(op string, start time.Time, err error) {
	m.trip(op, start)
	m.failed(op, err)
}

// roundTripEach records one pipelined round trip of several calls, and
// counts each call that failed.
func (m *metrics) roundTripEach(op string, start time.Time, res []rueidis.RedisResult) {
	m.trip(op, start)
	for _, r := range res {
		m.failed(op, r.Error())
	}
}

func (m *metrics) trip(op string, start time.Time) {
	d := time.Since(start)
	m.trips.Add(1)
	m.nanos.Add(uint64(d))
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// failed counts err, unless it is none or a nil reply (no such key), which
// is an answer.
func (m *metrics) failed(op string, err error) {
	if err != nil && !isRedisNil(err) {
		m.errors.Add(1)
		m.errorsC.WithLabelValues(op).Inc()
	}
}

// conflict counts a compare-and-set lost to another writer.
func (m *metrics) conflict() {
	m.conflicts.Add(1)
	m.conflictsC.Inc()
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	m := s.metrics
	return Stats{
		RoundTrips:       m.trips.Load(),
		Errors:           m.errors.Load(),
		RoundTripSeconds: time.Duration(m.nanos.Load()).Seconds(),
		CASConflicts:     m.conflicts.Load(),
		PartitionsOwned:  s.OwnedPartitions(),
		LeaseTakeovers:   m.takeovers.Load(),
	}
}
