package connect

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	presence "github.com/presenced/presenced"
)

type metrics struct {
	opened, resumes, graceExpiries, timeouts, replaced, slow prometheus.Counter
	// swept and renames count what the registry of holders made happen.
	swept, renames prometheus.Counter
	in, out        *prometheus.CounterVec
	// outChange is out's "change" counter, looked up once: changes are the
	// messages sent most.
	outChange prometheus.Counter
}

func (m *metrics) outCounter(label string) prometheus.Counter {
	if label == "change" {
		return m.outChange
	}
	return m.out.WithLabelValues(label)
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		opened:        prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connections_opened_total", Help: "Client connections accepted (WebSocket upgrades)."}),
		resumes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connection_resumes_total", Help: "Hellos that found their device's session still there (a reconnect within the grace window)."}),
		graceExpiries: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connection_grace_expiries_total", Help: "Sessions released by their connection on this process that nobody resumed within the grace window."}),
		timeouts:      prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connection_timeouts_total", Help: "Connections ended because nothing was heard from them for longer than the timeout."}),
		replaced:      prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connection_replaced_total", Help: "Connections ended because another connection of the same device took over."}),
		slow:          prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connection_slow_consumers_total", Help: "Watching connections dropped for not taking changes fast enough."}),
		swept:         prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connection_holder_sessions_swept_total", Help: "Sessions listed under holders (processes) found dead, ended by this process unless another holder had taken them over."}),
		renames:       prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_connection_holder_renames_total", Help: "Times this process, found dead by another (it stalled past its record's life), held its sessions again under a new holder name."}),
		in:            prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_connection_messages_in_total", Help: "Messages received from clients, by type (invalid for those refused)."}, []string{"type"}),
		out:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_connection_messages_out_total", Help: "Messages sent to clients, by type."}, []string{"type"}),
	}
	m.outChange = m.out.WithLabelValues("change")
	if reg == nil {
		return m, nil
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_connections_open", Help: "Client connections open."}, func() float64 {
		o, _, _ := s.counts()
		return float64(o)
	})
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_connection_sessions", Help: "Sessions held by this process's connections, by kind.", ConstLabels: prometheus.Labels{"kind": presence.ConnectionSession.String()}}, func() float64 {
		_, a, _ := s.counts()
		return float64(a)
	})
	idle := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_connection_sessions", Help: "Sessions held by this process's connections, by kind.", ConstLabels: prometheus.Labels{"kind": presence.IdleConnectionSession.String()}}, func() float64 {
		_, _, i := s.counts()
		return float64(i)
	})
	for _, c := range []prometheus.Collector{m.opened, m.resumes, m.graceExpiries, m.timeouts, m.replaced, m.slow, m.swept, m.renames, m.in, m.out, open, held, idle} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("connect: register metrics: %w", err)
		}
	}
	return m, nil
}

// graceKey names a released session.
type graceKey struct {
	key    presence.Key
	device string
}

// graces remembers the sessions this process released, until they are
// resumed or their grace window ends, for the metrics.
type graces struct {
	mu      sync.Mutex
	pending map[graceKey]time.Time
}

func (s *Server) released(k presence.Key, device string) {
	s.graces.mu.Lock()
	defer s.graces.mu.Unlock()
	if s.graces.pending == nil {
		s.graces.pending = make(map[graceKey]time.Time)
	}
	s.graces.pending[graceKey{k, device}] = s.clock.Now().Add(s.cfg.Grace)
}

func (s *Server) resumed(k presence.Key, device string) bool {
	s.graces.mu.Lock()
	defer s.graces.mu.Unlock()
	end, ok := s.graces.pending[graceKey{k, device}]
	delete(s.graces.pending, graceKey{k, device})
	return ok && s.clock.Now().Before(end)
}

// sweepGraces counts the grace windows that ended by now.
func (s *Server) sweepGraces(now time.Time) {
	s.graces.mu.Lock()
	defer s.graces.mu.Unlock()
	for g, end := range s.graces.pending {
		if !now.Before(end) {
			s.m.graceExpiries.Inc()
			delete(s.graces.pending, g)
		}
	}
}
