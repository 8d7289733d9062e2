package graphapi

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
)

// Limits of the event streams.
const (
	// streamKeepAlive is how often an idle event stream gets a comment line.
	streamKeepAlive = 15 * time.Second
	// streamWriteTimeout bounds every write to a stream: a client that
	// does not read for that long is dropped.
	streamWriteTimeout = 10 * time.Second
	// streamBuffer, plus two per user watched, is how many events a stream
	// holds for its client (so that a change of every user at once, the
	// clock fading them all, fits); a client that falls further behind is
	// dropped with a reconnect event.
	streamBuffer = 32
	// streamRetryAfter is the Retry-After of a stream refused by a cap.
	streamRetryAfter = 5
	// DefaultMaxStreams and DefaultMaxStreamsPerApp are the defaults of
	// Config.MaxStreams and Config.MaxStreamsPerApp.
	DefaultMaxStreams       = 10000
	DefaultMaxStreamsPerApp = 1000
)

// streamCaps counts the open streams, in all and per (app, tenant).
type streamCaps struct {
	max, perApp int
	mu          sync.Mutex
	total       int
	byApp       map[bucketKey]int
}

func newStreamCaps(maxTotal, perApp int) *streamCaps {
	if maxTotal <= 0 {
		maxTotal = DefaultMaxStreams
	}
	if perApp <= 0 {
		perApp = DefaultMaxStreamsPerApp
	}
	return &streamCaps{max: maxTotal, perApp: perApp, byApp: make(map[bucketKey]int)}
}

// acquire takes a stream slot of (app, tenant), or answers 429.
func (sc *streamCaps) acquire(app, tenant string) (release func(), err error) {
	k := bucketKey{app, tenant}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	switch {
	case sc.byApp[k] >= sc.perApp:
		return nil, &throttled{retryAfter: streamRetryAfter,
			message: fmt.Sprintf("Too many open event streams: this application may hold %d in this tenant.", sc.perApp)}
	case sc.total >= sc.max:
		return nil, &throttled{retryAfter: streamRetryAfter,
			message: fmt.Sprintf("Too many open event streams: the server holds at most %d.", sc.max)}
	}
	sc.byApp[k]++
	sc.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			sc.mu.Lock()
			defer sc.mu.Unlock()
			sc.total--
			if sc.byApp[k]--; sc.byApp[k] <= 0 {
				delete(sc.byApp, k)
			}
		})
	}, nil
}

// Open returns the number of open streams.
func (sc *streamCaps) open() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.total
}

// The reasons a stream ends with a reconnect event.
const (
	reasonTokenExpired = "tokenExpired"
	reasonTooSlow      = "tooSlow"
	reasonShutdown     = "shutdown"
)

// stream serves GET /presenced/stream?$filter=id in (...):
// Server-Sent Events with the current presence of every requested user,
// then each change as it happens, the event id being the user's
// sequenceNumber. It needs the permissions of reading each user.
//
// A stream ends with "event: reconnect" and data {"reason": ...} when the
// token it was opened with expires ("tokenExpired"), when its client falls
// more than its buffer behind ("tooSlow"), or when the server
// shuts down ("shutdown"); the client then opens a new one (with a fresh
// token), which starts with current presence. A write that does not end
// within streamWriteTimeout ends the stream without one.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, c *call) error {
	ids, err := filterIDs(r.URL.Query(), newScratch()) // the stream keeps the ids
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := c.principal.CanRead(id); err != nil {
			return err
		}
	}
	release, err := s.streams.acquire(c.principal.AppID, c.principal.Tenant)
	if err != nil {
		return err
	}
	defer release()
	keys := make([]presence.Key, len(ids))
	for i, id := range ids {
		keys[i] = presence.Key{Tenant: c.principal.Tenant, User: id}
	}
	// Watch before reading, so no change falls between the two.
	watch := s.svc.Watch(keys, streamBuffer+2*len(keys))
	defer watch.Close()
	views, err := s.svc.Read(r.Context(), c.principal.Tenant, ids)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	w.WriteHeader(http.StatusOK)
	// w buffers what is written (net/http's own buffer: a stream needs no
	// second one); flush sends it within the write deadline. The deadline
	// is set before every write too, as a write may fill the buffer.
	var werr error
	write := func(b []byte) {
		if werr == nil {
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			_, werr = w.Write(b)
		}
	}
	flush := func() error {
		if werr != nil {
			return werr
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		return rc.Flush()
	}
	send := func(user string, v presence.View) error {
		b := append([]byte("id: "), v.SequenceNumber()...)
		b = append(b, "\nevent: presence\ndata: "...)
		b = appendPresence(b, "", user, v, c.principal.SeesPrivateStatus(user), nil)
		b = append(b, "\n\n"...)
		write(b)
		return flush()
	}
	reconnect := func(reason string) {
		write([]byte("event: reconnect\ndata: {\"reason\":\"" + reason + "\"}\n\n"))
		_ = flush()
	}
	// The last sequenceNumber sent of each user.
	wanted := make(map[string]uint64, len(ids))
	for i, id := range ids {
		wanted[id] = views[i].Seq
		if err := send(id, views[i]); err != nil {
			return nil // the client went away
		}
	}
	var expired <-chan time.Time
	if c.principal.ExpiresAt > 0 {
		t := time.NewTimer(time.Until(time.Unix(c.principal.ExpiresAt, 0)))
		defer t.Stop()
		expired = t.C
	}
	keepAlive := time.NewTicker(streamKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.streamsDone:
			reconnect(reasonShutdown)
			return nil
		case <-expired:
			reconnect(reasonTokenExpired)
			return nil
		case <-watch.Overflowed():
			reconnect(reasonTooSlow)
			return nil
		case <-keepAlive.C:
			write([]byte(": keep-alive\n\n"))
			if flush() != nil {
				return nil
			}
		case ev := <-watch.Events():
			last, ok := wanted[ev.Key.User]
			if !ok || ev.After.Seq <= last {
				continue
			}
			wanted[ev.Key.User] = ev.After.Seq
			if err := send(ev.Key.User, ev.After); err != nil {
				return nil
			}
		}
	}
}

// CloseStreams ends every event stream, as the server shuts down (streams
// would otherwise keep their connections busy forever).
func (s *Server) CloseStreams() {
	s.closeStreams.Do(func() { close(s.streamsDone) })
}

// OpenStreams returns the number of event streams open now.
func (s *Server) OpenStreams() int { return s.streams.open() }
