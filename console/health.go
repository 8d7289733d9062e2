package console

import (
	"net/http"
	"time"
)

// health serves GET /presenced/health: the figures /metrics exports that an
// operator looks at first, read from the same registry. They are the whole
// node's (no tenant's data, no ids), so any token that may read its tenant
// may read them.
func (c *Console) health(w http.ResponseWriter, _ *http.Request, v viewer) error {
	if !v.Operator {
		if err := v.CanReadMany(); err != nil {
			return err
		}
	}
	out := map[string]any{
		"node":          c.cfg.Node,
		"storeKind":     c.cfg.StoreKind,
		"testHooks":     c.cfg.TestHooks,
		"now":           c.cfg.Service.Clock().Now(),
		"wallClock":     time.Now().UTC(),
		"uptimeSeconds": time.Since(c.started).Seconds(),
	}
	if c.cfg.Gatherer == nil {
		return writeJSON(w, out)
	}
	families, err := c.cfg.Gatherer.Gather()
	if err != nil && len(families) == 0 {
		return err
	}
	byName := make(map[string]int, len(families))
	for i, f := range families {
		byName[f.GetName()] = i
	}
	// value is the sum of a family's samples (a counter or gauge; the
	// labelled ones summed), and whether it exists.
	value := func(name string, labels ...string) (float64, bool) {
		i, ok := byName[name]
		if !ok {
			return 0, false
		}
		f := families[i]
		sum := 0.0
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				match := false
				for _, lp := range m.GetLabel() {
					match = match || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !match {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return sum, true
	}
	put := func(key, name string, labels ...string) {
		if x, ok := value(name, labels...); ok {
			out[key] = x
		}
	}
	put("sessions", "presenced_sessions")
	put("changeEvents", "presenced_change_events_total")
	put("changeEventsDropped", "presenced_change_events_dropped_total")
	put("schedulerFired", "presenced_scheduler_fired_total")
	put("schedulerLagSeconds", "presenced_scheduler_lag_seconds")
	put("schedulerPending", "presenced_scheduler_pending")
	put("storeUsers", "presenced_store_users")
	put("storeWrites", "presenced_store_write_seconds")
	put("httpRequests", "presenced_http_requests_total")
	put("notifyQueueDepth", "presenced_notify_queue_depth")
	put("notifyRetries", "presenced_notify_retries_total")
	put("notifyDropped", "presenced_notify_dropped_total")
	deliveries := map[string]float64{}
	for _, outcome := range []string{"delivered", "failed", "dropped"} {
		if x, ok := value("presenced_notify_deliveries_total", "outcome", outcome); ok {
			deliveries[outcome] = x
		}
	}
	out["deliveries"] = deliveries
	put("goroutines", "go_goroutines")
	put("residentBytes", "process_resident_memory_bytes")
	return writeJSON(w, out)
}
