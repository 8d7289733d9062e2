// Package graphapi serves the Microsoft Graph presence API over HTTP: it
// decodes requests (gzip bodies too), routes every path alias of /v1.0 and
// /beta, authenticates and throttles callers, runs JSON $batch, and answers
// in Graph's wire format, errors included.
package graphapi

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	presence "github.com/presenced/presenced"
)

// Authenticator turns a bearer token into a verified Principal. Failures are
// *presence.Error values with code InvalidAuthenticationToken.
type Authenticator interface {
	Verify(ctx context.Context, raw string) (presence.Principal, error)
}

// TicketRedeemer trades a short-lived, single-use ticket (bought with a
// bearer token at /presenced/tickets) for its principal. A browser's
// EventSource cannot send an Authorization header, so the event stream
// also takes ?ticket=; the token itself never goes into a URL.
type TicketRedeemer interface {
	Redeem(ctx context.Context, id string) (presence.Principal, error)
}

// Config holds what the Graph surface needs.
type Config struct {
	Service *presence.Service
	Auth    Authenticator
	// Tickets, when set, lets the event stream authenticate with ?ticket=
	// instead of an Authorization header.
	Tickets TicketRedeemer
	// Subscriptions serves /subscriptions; nil leaves them out.
	Subscriptions presence.Subscriptions
	// PublicURL is the base of @odata.context URLs; empty derives it from
	// each request.
	PublicURL string
	// RateLimit is the presence requests allowed per 30 s per (app, tenant);
	// 0 turns throttling off.
	RateLimit int
	// Limiter keeps the budgets; nil keeps them in memory (NewMemoryLimiter).
	Limiter Limiter
	// ThrottleRealTime makes a throttling window also end once real time
	// has moved past it, whatever the service clock says (for a test clock,
	// which stands still). The budget then has a second view on the real
	// clock: a second MemoryLimiter, or with Config.Limiter set, the same
	// limiter under the app "realtime/<app>". A request is admitted when
	// either view admits it.
	ThrottleRealTime bool
	// MaxStreams caps the event streams open at once (default
	// DefaultMaxStreams), and MaxStreamsPerApp those of one (app, tenant)
	// (default DefaultMaxStreamsPerApp); beyond them a stream is refused
	// with 429.
	MaxStreams, MaxStreamsPerApp int
	// MaxBodyBytes bounds a request body, after decompression (default 1 MiB).
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Registerer receives the HTTP metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Server is the Graph presence API as an http.Handler.
type Server struct {
	svc          *presence.Service
	auth         Authenticator
	tickets      TicketRedeemer
	subs         presence.Subscriptions
	publicURL    string
	maxBody      int64
	logger       *slog.Logger
	limiter      Limiter
	realLimiter  Limiter // the real-time view, with ThrottleRealTime
	realApp      string  // prefixes the app in realLimiter's keys
	limit        atomic.Int64
	window       atomic.Int64 // nanoseconds
	routes       []route
	ownRoutes    []route // under /presenced/
	streams      *streamCaps
	streamsDone  chan struct{}
	closeStreams sync.Once
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	bulk         sync.Pool // of *bulkScratch
}

// NewServer builds the Graph API handler.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.Auth == nil {
		return nil, errors.New("graphapi: a Service and an Authenticator are required")
	}
	s := &Server{
		svc:         cfg.Service,
		auth:        cfg.Auth,
		tickets:     cfg.Tickets,
		subs:        cfg.Subscriptions,
		publicURL:   strings.TrimSuffix(cfg.PublicURL, "/"),
		maxBody:     cfg.MaxBodyBytes,
		logger:      cfg.Logger,
		limiter:     cfg.Limiter,
		streamsDone: make(chan struct{}),
		streams:     newStreamCaps(cfg.MaxStreams, cfg.MaxStreamsPerApp),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_http_requests_total",
			Help: "Graph API requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_http_request_duration_seconds",
			Help:    "Graph API request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	s.limit.Store(int64(cfg.RateLimit))
	s.window.Store(int64(throttleWindow))
	if s.limiter == nil {
		s.limiter = NewMemoryLimiter()
		if cfg.ThrottleRealTime {
			s.realLimiter = NewMemoryLimiter()
		}
	} else if cfg.ThrottleRealTime {
		s.realLimiter, s.realApp = s.limiter, realTimeApp
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.requests, s.latency} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("graphapi: register metrics: %w", err)
			}
		}
	}
	s.routes = s.routeTable()
	s.ownRoutes = s.ownRouteTable()
	return s, nil
}

// SetRateLimit changes the presence request budget per 30 s per (app,
// tenant); 0 turns throttling off.
func (s *Server) SetRateLimit(n int) { s.limit.Store(int64(n)) }

// SetThrottleWindow changes the throttling window (Graph's is 30 s, the
// default); the test hooks shorten it so that a test can wait one out.
func (s *Server) SetThrottleWindow(d time.Duration) {
	if d <= 0 {
		d = throttleWindow
	}
	s.window.Store(int64(d))
}

// throttle draws one request of p from its (app, tenant) budget: nil when
// admitted, *throttled when over it, and an Unavailable error when the
// limiter cannot decide.
func (s *Server) throttle(ctx context.Context, p presence.Principal) error {
	b := Budget{Limit: int(s.limit.Load()), Window: time.Duration(s.window.Load())}
	if b.Limit <= 0 {
		return nil
	}
	wait, ok, err := s.limiter.Allow(ctx, p.AppID, p.Tenant, s.svc.Clock().Now(), b)
	if err != nil {
		return presence.Unavailable(fmt.Errorf("throttle: %w", err))
	}
	if s.realLimiter != nil {
		// Both views count every request; either one admitting it is
		// enough.
		realWait, realOK, err := s.realLimiter.Allow(ctx, s.realApp+p.AppID, p.Tenant, time.Now(), b)
		if err != nil {
			return presence.Unavailable(fmt.Errorf("throttle: %w", err))
		}
		ok = ok || realOK
		wait = min(wait, realWait)
	}
	if ok {
		return nil
	}
	return &throttled{retryAfter: retrySeconds(wait)}
}

// The names of the headers every request reads or writes, in the
// canonical form net/http keeps them in (header names are
// case-insensitive): a name given otherwise is canonicalized, a copy made,
// on every use.
const (
	hdrRequestID       = "Request-Id"
	hdrClientRequestID = "Client-Request-Id"
	hdrODataVersion    = "Odata-Version"
)

type ctxKey int

const idsKey ctxKey = iota

type ids struct{ request, client string }

func requestIDs(ctx context.Context) ids {
	v, _ := ctx.Value(idsKey).(ids)
	return v
}

// idsOf returns the ids of r, answered on w: those r's context carries (an
// inner request of a $batch, or one given them by withIDs), else those
// ServeHTTP set as w's headers (setIDs), which spares every request a copy
// of itself and a context to carry them.
func idsOf(w http.ResponseWriter, r *http.Request) ids {
	if v, ok := r.Context().Value(idsKey).(ids); ok {
		return v
	}
	h := w.Header()
	return ids{request: h.Get(hdrRequestID), client: h.Get(hdrClientRequestID)}
}

// setIDs gives a request its ids: a new request-id, and the
// client-request-id it was sent with, else the request-id. It sets both
// response headers, where idsOf finds them.
func setIDs(w http.ResponseWriter, r *http.Request) ids {
	id := ids{request: presence.NewGUID(), client: r.Header.Get(hdrClientRequestID)}
	if id.client == "" {
		id.client = id.request
	}
	// One backing array for both values instead of one each.
	vals := [...]string{id.request, id.client}
	h := w.Header()
	h[hdrRequestID] = vals[0:1:1]
	h[hdrClientRequestID] = vals[1:2:2]
	return id
}

// withIDs is setIDs that also returns r carrying the ids in its context,
// for requestIDs.
func withIDs(w http.ResponseWriter, r *http.Request) (*http.Request, ids) {
	id := setIDs(w, r)
	return r.WithContext(context.WithValue(r.Context(), idsKey, id)), id
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := setIDs(w, r)
	sw := &statusWriter{ResponseWriter: w}
	routeName := s.serve(sw, r, nil)
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	took := time.Since(start)
	s.requests.WithLabelValues(routeName, methodLabel(r.Method), statusLabel(status)).Inc()
	s.latency.WithLabelValues(routeName).Observe(took.Seconds())
	if s.logger.Enabled(r.Context(), slog.LevelDebug) { // spares boxing the attributes on every request
		s.logger.DebugContext(r.Context(), "request", "request_id", id.request, "method", r.Method,
			"path", r.URL.Path, "status", status, "route", routeName, "duration", took)
	}
}

// serve routes and runs one request (an outer one, or one inside a $batch
// when outer is set) and returns the route's name for metrics.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, outer *call) (routeName string) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.fail(w, r, fmt.Errorf("panic: %v", v))
			routeName = "panic"
		}
	}()
	version, rest, ok := splitVersion(r.URL.Path)
	if !ok {
		s.fail(w, r, presence.Errorf(presence.CodeNotFound, "Resource not found for the segment '%s'.", firstSegment(r.URL.Path)))
		return "unmatched"
	}
	routes := s.routes
	if version == ownPrefix {
		routes = s.ownRoutes
	}
	rt, id, err := match(routes, r.Method, rest)
	if err != nil {
		if errors.Is(err, errMethod) {
			w.Header().Set("Allow", rt.allow)
		}
		s.fail(w, r, err)
		return "unmatched"
	}
	c := &call{version: version, alias: rt.alias, id: id, hasID: rt.hasID, outer: outer}
	if err := s.prepare(w, r, rt, c); err != nil {
		s.fail(w, r, err)
		return rt.name
	}
	if err := rt.handle(w, r, c); err != nil {
		s.fail(w, r, err)
	}
	return rt.name
}

// prepare decodes the body, authenticates the caller and, when the route
// counts against the presence budget, throttles it.
func (s *Server) prepare(w http.ResponseWriter, r *http.Request, rt *route, c *call) error {
	if r.Body != nil && r.Body != http.NoBody {
		body := io.ReadCloser(http.MaxBytesReader(w, r.Body, s.maxBody))
		if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
			zr, err := gzip.NewReader(body)
			if err != nil {
				return presence.Errorf(presence.CodeBadRequest, "The request body is not valid gzip.")
			}
			body = http.MaxBytesReader(w, zr, s.maxBody)
		}
		r.Body = body
	}
	p, err := s.authenticate(r, c, rt)
	if err != nil {
		return err
	}
	c.principal = p
	if rt.throttled {
		return s.throttle(r.Context(), p)
	}
	return nil
}

func (s *Server) authenticate(r *http.Request, c *call, rt *route) (presence.Principal, error) {
	if c.outer != nil {
		return c.outer.principal, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" && rt.name == "presenceStream" && s.tickets != nil {
		if t := r.URL.Query().Get("ticket"); t != "" {
			return s.tickets.Redeem(r.Context(), t)
		}
	}
	scheme, token, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return presence.Principal{}, presence.Errorf(presence.CodeInvalidAuthenticationToken, "Access token is empty.")
	}
	return s.auth.Verify(r.Context(), strings.TrimSpace(token))
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = presence.Errorf(presence.CodeRequestTooLarge, "The request body exceeds the limit of %d bytes.", mbe.Limit)
	}
	writeError(w, r, s.logger, time.Now(), err)
}

// ownPrefix is the first path segment of what presenced adds beyond Graph
// (/presenced/stream, ...); it takes the place of a version.
const ownPrefix = "presenced"

// splitVersion splits "/v1.0/rest" into its version and the rest; for
// "/presenced/rest" the version is ownPrefix.
func splitVersion(path string) (version, rest string, ok bool) {
	p := strings.TrimPrefix(path, "/")
	first, rest, _ := strings.Cut(p, "/")
	switch {
	case strings.EqualFold(first, "v1.0"):
		return "v1.0", rest, true
	case strings.EqualFold(first, "beta"):
		return "beta", rest, true
	case first == ownPrefix:
		return ownPrefix, rest, true
	}
	return "", "", false
}

func firstSegment(path string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return first
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteError answers err in Graph's error envelope, with the request-id and
// client-request-id headers; other packages' handlers (the test hooks) use it
// so every error presenced sends has one shape.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if idsOf(w, r).request == "" {
		r, _ = withIDs(w, r)
	}
	s.fail(w, r, err)
}

// statusLabel is status as a metric label: the common ones without
// formatting a string on every request.
func statusLabel(status int) string {
	switch status {
	case http.StatusOK:
		return "200"
	case http.StatusCreated:
		return "201"
	case http.StatusNoContent:
		return "204"
	case http.StatusNotFound:
		return "404"
	}
	return strconv.Itoa(status)
}

// methodLabel is the method as a metric label: the methods HTTP defines
// as they are, anything else as "other", so that clients inventing
// methods cannot grow the metrics without bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodPut,
		http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
