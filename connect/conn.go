package connect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/ticket"
)

// conn is one client connection.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	wire *wire
	p    presence.Principal
	key  presence.Key
	// device is the session's id, set by hello.
	device string

	heard   atomic.Int64 // real-clock Unix nanoseconds of the last frame heard
	greeted atomic.Bool  // hello was served
	pinged  atomic.Int64 // real-clock Unix nanoseconds of the last ping sent
	// renewed is when the lease was last taken or renewed, service-clock
	// Unix milliseconds.
	renewed atomic.Int64
	pinging atomic.Bool
	idle    atomic.Bool

	// mu guards what the reader and the lease renewals share.
	mu   sync.Mutex
	pair *presence.Pair // the state the client announced, nil for none
	name string
	// holder is the holder its session was last held under, or is being
	// held under (with a registry of holders), "" for none; unsettled
	// says the last hold under it failed, so the holders' loop holds it
	// again.
	holder    string
	unsettled bool

	// watching is the set of users watched; the Server's wmu guards it.
	watching map[presence.Key]struct{}

	// The watch pump: started by the first watch.
	pumpOnce sync.Once
	ctl      chan []string // users whose snapshot is wanted
	events   chan *encodedChange
	slow     atomic.Bool

	endOnce sync.Once
	ended   chan struct{}
	// expired is set once the token's expiry was acted on.
	expired atomic.Bool
}

func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Tickets.Authenticate(r, connectAuth{s.cfg.Auth})
	if err != nil {
		s.cfg.WriteError(w, r, err)
		return
	}
	if err := p.CanWrite(p.User); err != nil || !p.Delegated {
		if err == nil {
			err = presence.Errorf(presence.CodeForbidden, "A connection holds a signed-in user's presence: it needs a delegated token with Presence.ReadWrite.")
		}
		s.cfg.WriteError(w, r, err)
		return
	}
	// Tickets and tokens authenticate every connection, never cookies, so
	// a page of another origin gains nothing by opening one: the origin
	// is not checked.
	c := &conn{
		s: s, p: p,
		key:   presence.Key{Tenant: p.Tenant, User: p.User},
		ended: make(chan struct{}),
	}
	ws, err := websocket.Accept(smallBuffers{w, c}, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the request
	}
	ws.SetReadLimit(MaxMessageBytes)
	c.ws = ws
	c.heard.Store(time.Now().UnixNano())
	c.pinged.Store(time.Now().UnixNano())
	c.renewed.Store(s.clock.Now().UnixMilli()) // its hello takes the lease
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.running.Add(1)
	s.mu.Unlock()
	s.m.opened.Inc()
	// The hello is read and served here, on the handler's goroutine, whose
	// stack has grown already: a connect costs no goroutine of its own
	// until it is held.
	ctx := context.Background()
	helloBy := time.AfterFunc(s.cfg.Timeout, func() {
		if !c.greeted.Load() {
			c.end(CloseTimeout, "no hello")
		}
	})
	alive := true
	for alive && !c.greeted.Load() {
		alive = c.next(ctx)
	}
	helloBy.Stop()
	// The connection lives on a goroutine of its own, so that the
	// request, its response writer and the handler's deep stack are
	// released now: an idle connection costs one shallow goroutine.
	go c.run(alive)
}

// run reads the client's messages until the connection ends (at once
// when alive is false), then releases the session for the grace window.
// Between messages it waits in the wire, on a shallow stack; each message
// is read and served on a goroutine of its own, which ends with it.
func (c *conn) run(alive bool) {
	defer c.s.running.Done()
	if alive {
		c.listen()
	}
	c.release()
}

// listen serves messages until the connection ends. Its goroutine spends
// an idle connection's life in wire.wait: the frames down to there are
// kept small, so that it fits the smallest goroutine stack (2 KiB).
//
//go:noinline
func (c *conn) listen() {
	done := make(chan bool, 1)
	for alive := true; alive; alive = <-done {
		c.wire.wait()
		go func() { done <- c.next(context.Background()) }()
	}
}

// release ends the connection and releases its session for the grace
// window.
//
//go:noinline
func (c *conn) release() {
	c.end(websocket.StatusNormalClosure, "")
	if c.s.unhold(c) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.s.releaseOne(ctx, c.key, c.device, c.getHolder())
		cancel()
	}
	// Counted open until its session is released, so that what follows a
	// close sees the release.
	c.s.forget(c)
}

// next reads and serves one message; it reports whether the connection
// lives on.
func (c *conn) next(ctx context.Context) bool {
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		return false
	}
	c.heard.Store(time.Now().UnixNano())
	if typ != websocket.MessageText {
		c.fail(badMessage("Messages are JSON text, not binary."), CloseBadMessage, "binary message")
		return false
	}
	msg, err := c.serveHere(ctx, data)
	if err == nil {
		return true
	}
	var pe *protocolError
	if errors.As(err, &pe) && !pe.Fatal {
		c.send(errorMessage{Type: "error", Code: string(pe.Code), Message: pe.Message, Ref: msg.Type})
		return true
	}
	var de *presence.Error
	if errors.As(err, &de) && !pe.isFatal() {
		c.send(errorMessage{Type: "error", Code: string(de.Code), Message: de.Message, Ref: msg.Type})
		return true
	}
	if pe != nil {
		c.fail(pe, CloseBadMessage, "bad message")
	} else {
		c.s.logger.Error("connection: serving a message", "user", c.key.String(), "err", err)
		c.fail(&protocolError{Code: presence.CodeInternal, Message: "The message could not be served."}, websocket.StatusInternalError, "internal error")
	}
	return false
}

// serveHere parses and handles one message on the calling goroutine.
func (c *conn) serveHere(ctx context.Context, data []byte) (clientMessage, error) {
	msg, err := parseMessage(data)
	c.s.m.in.WithLabelValues(msgLabel(msg.Type, err)).Inc()
	if err == nil {
		err = c.handle(ctx, msg)
	}
	return msg, err
}

func (pe *protocolError) isFatal() bool { return pe != nil && pe.Fatal }

// handle serves one valid message.
func (c *conn) handle(ctx context.Context, m clientMessage) error {
	if c.device == "" && m.Type != typeHello {
		return badMessage("The first message must be a hello.")
	}
	lease := c.s.lease()
	switch m.Type {
	case typeHello:
		if c.device != "" {
			return badMessage("A connection says hello once.")
		}
		return c.hello(ctx, m)
	case typeState:
		_, err := c.do(ctx, &presence.SetConnectionState{Device: c.device, Availability: *m.Availability, Activity: *m.Activity, Lease: lease})
		if err == nil {
			p, _ := presence.CanonicalConnectionPair(*m.Availability, *m.Activity)
			c.mu.Lock()
			c.pair = &p
			c.mu.Unlock()
		}
		return err
	case typeIdle, typeActive:
		idle := m.Type == typeIdle
		_, err := c.do(ctx, &presence.SetConnectionIdle{Device: c.device, Idle: idle, Lease: lease})
		if err == nil {
			c.idle.Store(idle)
		}
		return err
	case typeName:
		c.mu.Lock()
		c.name = *m.Name
		c.mu.Unlock()
		return nil
	case typeWatch:
		return c.watch(m.IDs)
	case typeUnwatch:
		keys := make([]presence.Key, len(m.IDs))
		for i, id := range m.IDs {
			keys[i] = presence.Key{Tenant: c.key.Tenant, User: id}
		}
		c.s.unwatch(c, keys)
		return nil
	case typePing:
		c.send(pongMessage{Type: "pong", ID: m.ID})
		return nil
	}
	return badMessage("Unknown message type.")
}

// do applies a command to the connection's session; a session whose lease
// ran out (the store was unreachable for a grace window) is held anew
// first.
func (c *conn) do(ctx context.Context, cmd presence.Command) (presence.Change, error) {
	ch, err := c.s.svc.Do(ctx, c.key, cmd)
	if errors.Is(err, &presence.Error{Code: presence.CodeNotFound}) {
		if err := c.s.holdAs(ctx, c, c.holdCommand()); err != nil {
			return ch, err
		}
		ch, err = c.s.svc.Do(ctx, c.key, cmd)
	}
	return ch, err
}

func (c *conn) holdCommand() *presence.HoldConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &presence.HoldConnection{Device: c.device, Pair: c.pair, Lease: c.s.lease(), Idle: c.idle.Load()}
}

// swapHolder records that the session is being held under h, and
// returns the holder it was held under before.
func (c *conn) swapHolder(h string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.holder
	c.holder, c.unsettled = h, false
	return old
}

// unsettle records that the last hold of the session failed.
func (c *conn) unsettle() {
	c.mu.Lock()
	c.unsettled = true
	c.mu.Unlock()
}

func (c *conn) getHolder() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holder
}

// settledUnder reports whether the session was last held under h, and
// that hold did not fail.
func (c *conn) settledUnder(h string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holder == h && !c.unsettled
}

func (c *conn) hello(ctx context.Context, m clientMessage) error {
	c.device = m.Device
	hold := &presence.HoldConnection{Device: m.Device, Lease: c.s.lease()}
	if m.Availability != nil {
		p, ok := presence.CanonicalConnectionPair(*m.Availability, *m.Activity)
		if !ok {
			return badMessage("The provided [Availability/Activity] combination is not supported.")
		}
		hold.Pair = &p
		c.pair = &p
	}
	if m.Name != nil {
		c.name = *m.Name
	}
	if old := c.s.hold(c); old != nil {
		c.s.m.replaced.Inc()
		old.end(CloseReplaced, "another connection of this device took over")
	}
	if err := c.s.holdAs(ctx, c, hold); err != nil {
		return err
	}
	c.renewed.Store(c.s.clock.Now().UnixMilli())
	resumed := hold.Resumed
	if c.s.resumed(c.key, c.device) || resumed {
		c.s.m.resumes.Inc()
	}
	if m.Idle != nil && *m.Idle {
		if _, err := c.do(ctx, &presence.SetConnectionIdle{Device: c.device, Idle: true, Lease: c.s.lease()}); err != nil {
			return err
		}
		c.idle.Store(true)
	}
	c.greeted.Store(true)
	c.send(readyMessage{
		Type: "ready", User: c.key.User, Device: c.device, Resumed: resumed,
		Heartbeat: c.s.cfg.Heartbeat.Seconds(), Timeout: c.s.cfg.Timeout.Seconds(),
	})
	return nil
}

// watch adds users to the watched set and has the pump send their
// snapshot.
func (c *conn) watch(ids []string) error {
	for _, id := range ids {
		if err := c.p.CanRead(id); err != nil {
			var de *presence.Error
			if errors.As(err, &de) {
				return invalid("%s (user %s)", de.Message, id)
			}
			return err
		}
	}
	keys := make([]presence.Key, 0, len(ids))
	c.s.wmu.Lock()
	n := len(c.watching)
	for _, id := range ids {
		k := presence.Key{Tenant: c.key.Tenant, User: id}
		if _, ok := c.watching[k]; !ok {
			n++
		}
		keys = append(keys, k)
	}
	if n > MaxWatch {
		c.s.wmu.Unlock()
		return invalid("A connection watches at most %d users.", MaxWatch)
	}
	if c.watching == nil {
		c.watching = make(map[presence.Key]struct{}, len(keys))
	}
	for _, k := range keys {
		c.watching[k] = struct{}{}
	}
	c.s.wmu.Unlock()
	c.pumpOnce.Do(func() {
		c.ctl = make(chan []string, 4)
		c.events = make(chan *encodedChange, c.s.cfg.Queue)
		go c.pump()
	})
	// Registered before the snapshot is read, so no change falls between.
	c.s.watch(c, keys)
	select {
	case c.ctl <- ids:
	case <-c.ended:
	}
	return nil
}

// deliver queues a change for the pump; a full queue makes the client a
// slow consumer, told and dropped. The Server's wmu is held.
func (c *conn) deliver(ev *encodedChange) {
	select {
	case c.events <- ev:
	default:
		c.deliverSlow()
	}
}

// deliverSlow tells the client it is a slow consumer and closes it.
func (c *conn) deliverSlow() {
	if c.slow.CompareAndSwap(false, true) {
		c.s.m.slow.Inc()
		go func() {
			c.send(noticeMessage{Type: "slow", Message: "Changes arrived faster than this connection took them; it is closed. Reconnect and watch again."})
			c.end(CloseSlow, "slow consumer")
		}()
	}
}

// pump sends snapshots and changes, in sequenceNumber order per user.
func (c *conn) pump() {
	ctx := context.Background()
	last := make(map[string]uint64)
	for {
		select {
		case <-c.ended:
			return
		case ids := <-c.ctl:
			views, err := c.s.svc.Read(ctx, c.key.Tenant, ids)
			if err != nil {
				c.send(errorMessage{Type: "error", Code: string(presence.CodeUnavailable), Message: "The presence of the watched users could not be read.", Ref: typeWatch})
				continue
			}
			snap := snapshotMessage{Type: "snapshot", Presences: make([]presenceEntry, len(ids))}
			for i, id := range ids {
				snap.Presences[i] = entry(id, views[i])
				if views[i].Seq > last[id] {
					last[id] = views[i].Seq
				}
			}
			c.send(snap)
		case ev := <-c.events:
			if c.slow.Load() {
				continue
			}
			if ev.seq <= last[ev.user] {
				continue
			}
			last[ev.user] = ev.seq
			c.write(ev.data, "change")
		}
	}
}

// send writes one message; a connection that cannot take it is ended.
func (c *conn) send(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	c.write(data, outLabel(v))
}

// write writes one encoded message. It has no deadline of its own: a peer
// that stops reading stops answering pings too, and the heartbeat then
// closes the connection, which ends the write.
func (c *conn) write(data []byte, label string) {
	if err := c.ws.Write(context.Background(), websocket.MessageText, data); err != nil {
		c.end(websocket.StatusGoingAway, "")
		return
	}
	c.s.m.outCounter(label).Inc()
}

// encodedChange is one change of a watched user, encoded once for every
// connection watching the user.
type encodedChange struct {
	user string
	seq  uint64
	data []byte
}

// fail tells the client what went wrong and ends the connection with code.
func (c *conn) fail(pe *protocolError, code websocket.StatusCode, reason string) {
	c.send(errorMessage{Type: "error", Code: string(pe.Code), Message: pe.Message})
	c.end(code, reason)
}

// end closes the connection with code, once; the reader then finishes.
func (c *conn) end(code websocket.StatusCode, reason string) {
	c.endOnce.Do(func() {
		close(c.ended)
		if code == CloseTimeout {
			c.s.m.timeouts.Inc()
			// A dead peer would not answer the close handshake either.
			go func() { _ = c.ws.CloseNow() }()
			return
		}
		go func() { _ = c.ws.Close(code, reason) }()
	})
}

// expire ends the connection whose token expired.
func (c *conn) expire() {
	c.fail(&protocolError{Code: presence.CodeInvalidAuthenticationToken, Message: "The access token has expired."}, CloseUnauthorized, "token expired")
}

// ping sends a WebSocket ping; the wire takes the pong, as something
// heard. The heartbeat ends a connection silent for longer than the
// timeout.
func (c *conn) ping() {
	defer c.pinging.Store(false)
	_ = c.wire.ping() // a broken connection ends its reader
}

func msgLabel(typ string, err error) string {
	var pe *protocolError
	if errors.As(err, &pe) && pe.Fatal {
		return "invalid"
	}
	switch typ {
	case typeHello, typeState, typeIdle, typeActive, typeName, typeWatch, typeUnwatch, typePing:
		return typ
	}
	return "invalid"
}

func outLabel(v any) string {
	switch m := v.(type) {
	case readyMessage:
		return m.Type
	case snapshotMessage:
		return m.Type
	case changeMessage:
		return m.Type
	case pongMessage:
		return m.Type
	case errorMessage:
		return m.Type
	case noticeMessage:
		return m.Type
	}
	return "other"
}

// connectAuth verifies a connection's token without adding it to the
// verifier's cache when the verifier can (auth.Verifier.VerifyUncached):
// the connection keeps its Principal, and a cached copy of every
// connection's token would only take memory.
type connectAuth struct{ ticket.Authenticator }

// Verify implements ticket.Authenticator.
func (a connectAuth) Verify(ctx context.Context, raw string) (presence.Principal, error) {
	if u, ok := a.Authenticator.(interface {
		VerifyUncached(ctx context.Context, raw string) (presence.Principal, error)
	}); ok {
		return u.VerifyUncached(ctx, raw)
	}
	return a.Authenticator.Verify(ctx, raw)
}

// The buffers an idle connection keeps: net/http's are 4 KiB each way,
// which would be most of what a connection costs. The wire hands the
// WebSocket one frame at a time and holds the start of a frame written
// until the rest comes, and a read or write as large as the buffer goes
// around it: both buffers can be tiny (bufio's smallest).
const (
	readBuffer  = 16
	writeBuffer = 16
)

// smallBuffers is the upgrade's ResponseWriter: its Hijack hands the
// WebSocket the connection's wire, with smaller buffers than net/http's,
// carrying over whatever the client already sent.
type smallBuffers struct {
	http.ResponseWriter
	c *conn
}

// Hijack implements http.Hijacker.
func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connect: the response writer cannot be hijacked")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// What the client sent already is handed to the WebSocket by the
	// wire, before what it reads.
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	w, err := newWire(nc, &s.c.heard, bytes.Clone(early))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	s.c.wire = w
	return w, bufio.NewReadWriter(bufio.NewReaderSize(w, readBuffer), bufio.NewWriterSize(w, writeBuffer)), nil
}
