package notify

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the change-notification counters, registered by NewMetrics.
type Metrics struct {
	Deliveries    *prometheus.CounterVec
	Retries       prometheus.Counter
	Dropped       prometheus.Counter
	Latency       prometheus.Histogram
	Handshakes    *prometheus.CounterVec
	Subscriptions prometheus.Counter
	Expired       prometheus.Counter
	QueueDepth    prometheus.GaugeFunc
	// QueueFull counts notifications dropped because their subscription's
	// in-memory queue was full (they count in Dropped too).
	QueueFull prometheus.Counter
	// OutboxDropped counts notices the Service dropped because a user's
	// outbox was full (presence.MaxOutbox undelivered notices).
	OutboxDropped prometheus.CounterFunc
	depth         func() float64
	outboxDropped func() float64
}

// NewMetrics makes the metrics and registers them with reg when it is not
// nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_notify_deliveries_total",
			Help: "Webhook POSTs by outcome: delivered, failed (will retry), dropped (gave up)."}, []string{"outcome"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_notify_retries_total",
			Help: "Webhook POSTs that were retries of a failed one."}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_notify_dropped_total",
			Help: "Notifications given up on: 4 hours of failures, a slow endpoint, a deleted subscription, or a full delivery queue."}),
		QueueFull: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_notify_queue_full_dropped_total",
			Help: "Notifications dropped because their subscription's in-memory delivery queue was full."}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "presenced_notify_change_to_delivery_seconds",
			Help:    "From a change to its successful delivery.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60, 600}}),
		Handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_notify_handshakes_total",
			Help: "Notification URL validation handshakes by outcome."}, []string{"outcome"}),
		Subscriptions: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_notify_subscriptions_created_total",
			Help: "Subscriptions created."}),
		Expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_notify_subscriptions_expired_total",
			Help: "Subscriptions deleted because they expired."}),
	}
	m.QueueDepth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_notify_queue_depth",
		Help: "Notifications waiting for delivery."}, func() float64 {
		if m.depth == nil {
			return 0
		}
		return m.depth()
	})
	m.OutboxDropped = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_notify_outbox_dropped_total",
		Help: "Notices dropped, oldest first, because a user's outbox held the most undelivered notices it keeps."}, func() float64 {
		if m.outboxDropped == nil {
			return 0
		}
		return m.outboxDropped()
	})
	if reg != nil {
		reg.MustRegister(m.Deliveries, m.Retries, m.Dropped, m.Latency, m.Handshakes, m.Subscriptions, m.Expired, m.QueueDepth,
			m.QueueFull, m.OutboxDropped)
	}
	return m
}
