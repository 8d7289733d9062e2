package e2e

// Client connections (GET /presenced/connect, POST /presenced/tickets): a
// connected device holds its user's session, fades when idle, outlives its
// connection by the grace window (30 s on the test clock), resumes without
// a visible change, ends after kill -9 within the grace window, and
// watches other users.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient is a test's client connection: a reader goroutine collects
// every message (answering the server's pings), until the connection ends.
type wsClient struct {
	t    testing.TB
	ws   *websocket.Conn
	mu   sync.Mutex
	msgs []map[string]any
	// seen is how many of msgs next has consumed.
	seen   int
	closed chan struct{}
	err    error
}

// dialWS opens /presenced/connect on s with a bearer token (or a query such
// as "?ticket=…" with token ""); it returns the HTTP answer of a refused
// upgrade.
func dialWS(t testing.TB, s *server, token, query string) (*wsClient, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, res, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(s.base, "http://")+"/presenced/connect"+query, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, res, err
	}
	c := &wsClient{t: t, ws: ws, closed: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { _ = ws.CloseNow() })
	return c, res, nil
}

// connectAs dials with token, says hello for device (and hello's extra
// members) and waits for ready.
func connectAs(t testing.TB, s *server, token, device string, extra ...any) *wsClient {
	t.Helper()
	c, res, err := dialWS(t, s, token, "")
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	hello := map[string]any{"type": "hello", "device": device}
	for i := 0; i+1 < len(extra); i += 2 {
		hello[extra[i].(string)] = extra[i+1]
	}
	c.send(hello)
	if r := c.next("ready"); r["device"] != device {
		t.Fatalf("ready: %v", r)
	}
	return c
}

func (c *wsClient) read() {
	defer close(c.closed)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			m = map[string]any{"type": "unparsable", "raw": string(data)}
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(data))
}

func (c *wsClient) sendRaw(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("send %s: %v", s, err)
	}
}

// next waits for the next message not yet consumed and requires its type.
func (c *wsClient) next(typ string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if c.seen < len(c.msgs) {
			m := c.msgs[c.seen]
			c.seen++
			c.mu.Unlock()
			if m["type"] != typ {
				c.t.Fatalf("got message %v, want a %s", m, typ)
			}
			return m
		}
		c.mu.Unlock()
		select {
		case <-c.closed:
			c.mu.Lock()
			more := c.seen < len(c.msgs)
			c.mu.Unlock()
			if !more {
				c.t.Fatalf("connection ended (%v) waiting for a %s", c.err, typ)
			}
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.t.Fatalf("no %s message within 10 s", typ)
	return nil
}

// pending returns the messages not yet consumed.
func (c *wsClient) pending() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs[c.seen:]...)
}

// sync sends a ping and waits for its pong: every message sent before it
// has been served.
func (c *wsClient) sync() {
	c.t.Helper()
	id := newGUID()
	c.send(map[string]any{"type": "ping", "id": id})
	if p := c.next("pong"); p["id"] != id {
		c.t.Fatalf("pong %v, want id %s", p, id)
	}
}

// closeCode waits until the server ended the connection and returns the
// close code.
func (c *wsClient) closeCode() websocket.StatusCode {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(15 * time.Second):
		c.t.Fatal("the connection did not end within 15 s")
	}
	return websocket.CloseStatus(c.err)
}

// bye closes the connection from the client side and waits for the end.
func (c *wsClient) bye() {
	_ = c.ws.Close(websocket.StatusNormalClosure, "bye")
	<-c.closed
}

// waitOpen waits until s counts n open connections: a connection is
// counted until its session is released, so after a close this is the
// moment the grace window starts.
func waitOpen(t testing.TB, s *server, n int) {
	t.Helper()
	want := fmt.Sprintf("\npresenced_connections_open %d\n", n)
	var body string
	eventually(t, 10*time.Second, func() bool {
		body = string(s.do(t, "GET", "/metrics", "", nil).Body)
		return strings.Contains(body, want)
	}, func() string { return "want" + want })
}

// eventuallyPresence polls until the user reads as pair on s (the release of a
// closed connection happens just after the close).
func (f *fixture) eventuallyPresence(user, availability, activity string) {
	f.t.Helper()
	var last string
	eventually(f.t, 10*time.Second, func() bool {
		r := f.getp(user)
		last = r.str("availability") + "/" + r.str("activity")
		return last == availability+"/"+activity
	}, func() string { return fmt.Sprintf("%s is %s, want %s/%s", short(user), last, availability, activity) })
}

func TestConnectMakesAvailableAndStates(t *testing.T) {
	f := newFixture(t)
	f.wantPresence(f.U1, "Offline", "Offline")
	c := connectAs(t, f.s, f.tok("D1rw"), "laptop", "name", "Ada's laptop")
	f.wantPresence(f.U1, "Available", "Available")
	c.send(map[string]any{"type": "state", "availability": "busy", "activity": "inacall"})
	c.sync()
	f.wantPresence(f.U1, "Busy", "InACall")
	// Graph's precedence: a preferred presence shows while the session lives.
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setUserPreferredPresence", f.U1), "D1rw",
		map[string]any{"availability": "DoNotDisturb", "activity": "DoNotDisturb"}))
	f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/clearUserPreferredPresence", f.U1), "D1rw", map[string]any{}))
	// A second device is a second session; closing one leaves the other.
	phone := connectAs(t, f.s, f.tok("D1rw"), "phone", "availability", "Available", "activity", "Available")
	f.wantPresence(f.U1, "Busy", "InACall")
	c.bye()
	waitOpen(t, f.s, 1)
	advance(t, "PT30S")
	f.eventuallyPresence(f.U1, "Available", "Available")
	phone.bye()
	waitOpen(t, f.s, 0)
	advance(t, "PT30S")
	f.eventuallyPresence(f.U1, "Offline", "Offline")
}

func TestConnectIdleFades(t *testing.T) {
	f := newFixture(t)
	c := connectAs(t, f.s, f.tok("D1rw"), "laptop")
	c.send(map[string]any{"type": "idle"})
	c.sync()
	f.wantPresence(f.U1, "Available", "Available")
	advance(t, "PT4M59S")
	f.wantPresence(f.U1, "Available", "Available")
	advance(t, "PT1S")
	f.wantPresence(f.U1, "Available", "AvailableInactive")
	advance(t, "PT5M")
	f.wantPresence(f.U1, "Away", "Away")
	advance(t, "PT1H") // the connection's lease is renewed as the clock jumps
	f.wantPresence(f.U1, "Away", "Away")
	c.send(map[string]any{"type": "active"})
	c.sync()
	f.wantPresence(f.U1, "Available", "Available")
}

func TestConnectCloseOfflineAfterGraceAndResume(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))))

	c := connectAs(t, f.s, f.tok("D2rw"), "laptop")
	f.wantPresence(f.U2, "Available", "Available")
	wantPairs(t, "connect", waitRich(t, sk, 1), f.U2, "Available/Available")
	seq := f.seqOf(f.U2)

	// Closed, then resumed within the window: nothing visible, no notification.
	c.bye()
	waitOpen(t, f.s, 0)
	advance(t, "PT29S")
	f.wantPresence(f.U2, "Available", "Available")
	c = connectAs(t, f.s, f.tok("D2rw"), "laptop")
	if r := c.pending(); len(r) != 0 {
		t.Fatalf("unexpected messages %v", r)
	}
	advance(t, "PT5M")
	f.wantPresence(f.U2, "Available", "Available")
	if got := f.seqOf(f.U2); got != seq {
		t.Errorf("sequenceNumber moved from %s to %s on a resume", seq, got)
	}

	// The state it says is notified; closing ends the session only after the window.
	c.send(map[string]any{"type": "state", "availability": "Busy", "activity": "InACall"})
	c.sync()
	wantPairs(t, "state", waitRich(t, sk, 2), f.U2, "Available/Available", "Busy/InACall")
	c.bye()
	waitOpen(t, f.s, 0)
	advance(t, "PT29S")
	f.wantPresence(f.U2, "Busy", "InACall")
	advance(t, "PT1S")
	f.wantPresence(f.U2, "Offline", "Offline")
	items := waitRich(t, sk, 3)
	wantPairs(t, "grace", items, f.U2, "Available/Available", "Busy/InACall", "Offline/Offline")
	wantSeqsIncreasing(t, "connection", items)
	// Nothing more came: the next notification is the next change.
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", f.U2), "APPrw", setBody(f.A, "Away", "Away", "PT5M")))
	wantPairs(t, "exactly", waitRich(t, sk, 4), f.U2, "Available/Available", "Busy/InACall", "Offline/Offline", "Away/Away")
}

func TestConnectSameDeviceTakesOver(t *testing.T) {
	f := newFixture(t)
	a := connectAs(t, f.s, f.tok("D1rw"), "laptop", "availability", "Busy", "activity", "Busy")
	b, _, err := dialWS(t, f.s, f.tok("D1rw"), "")
	if err != nil {
		t.Fatal(err)
	}
	b.send(map[string]any{"type": "hello", "device": "laptop"})
	if r := b.next("ready"); r["resumed"] != true {
		t.Errorf("ready %v, want resumed", r)
	}
	if code := a.closeCode(); code != 4409 {
		t.Errorf("replaced connection closed with %d, want 4409", code)
	}
	f.wantPresence(f.U1, "Busy", "Busy")
	advance(t, "PT1M")
	f.wantPresence(f.U1, "Busy", "Busy")
}

func TestConnectKill9EndsSessionsWithinGrace(t *testing.T) {
	f := newFixture(t)
	args := hookedArgs(t)
	first := startRestartableServer(t, args)
	f.s = first
	connectAs(t, first, f.tok("D1rw"), "laptop")
	f.wantPresence(f.U1, "Available", "Available")
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	second, err := startServerOn(strings.TrimPrefix(first.base, "http://"), args)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	stopAtEnd(t, second, "the restarted presenced")
	f.s = second
	// The lease was taken at most a grace window ago on the old clock, and
	// the new test clock starts at the real time, later.
	advanceOn(t, second, "PT30S")
	f.eventuallyPresence(f.U1, "Offline", "Offline")
}

func TestConnectBadMessages(t *testing.T) {
	f := newFixture(t)
	tok := f.tok("D1rw")
	for _, tc := range []struct {
		name, first string
	}{
		{"not JSON", "hello"},
		{"unknown type", `{"type":"dance"}`},
		{"state before hello", `{"type":"state","availability":"Busy","activity":"Busy"}`},
		{"bad device", `{"type":"hello","device":"a b"}`},
		{"unknown member", `{"type":"hello","device":"d","colour":"red"}`},
		{"two objects", `{"type":"hello","device":"d"}{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := dialWS(t, f.s, tok, "")
			if err != nil {
				t.Fatal(err)
			}
			c.sendRaw(tc.first)
			if e := c.next("error"); e["code"] == "" || e["message"] == "" {
				t.Errorf("error %v", e)
			}
			if code := c.closeCode(); code != 4400 {
				t.Errorf("closed with %d, want 4400", code)
			}
		})
	}
	// Errors that leave the connection open.
	c := connectAs(t, f.s, tok, "laptop")
	for _, m := range []string{
		`{"type":"state","availability":"Available","activity":"Busy"}`,
		`{"type":"state","availability":"Busy"}`,
		`{"type":"watch","ids":["not-a-guid"]}`,
		`{"type":"watch","ids":[]}`,
		`{"type":"idle","ids":[]}`,
	} {
		c.sendRaw(m)
		if e := c.next("error"); e["code"] != "InvalidArgument" {
			t.Errorf("%s: error %v, want InvalidArgument", m, e)
		}
	}
	c.sync()
	f.wantPresence(f.U1, "Available", "Available")
	// D1rw may not watch another user.
	c.send(map[string]any{"type": "watch", "ids": []string{f.U2}})
	if e := c.next("error"); !strings.Contains(fmt.Sprint(e["message"]), "Insufficient privileges") {
		t.Errorf("watching without Presence.Read.All: %v", e)
	}
	// Too big a message is 1009.
	c.sendRaw(`{"type":"ping","id":"` + strings.Repeat("x", 70<<10) + `"}`)
	if code := c.closeCode(); code != websocket.StatusMessageTooBig {
		t.Errorf("a 70 KiB message closed with %d, want 1009", code)
	}
}

func TestConnectAuth(t *testing.T) {
	f := newFixture(t)
	// No token, a read-only token, an application token: Graph errors, no upgrade.
	for _, tc := range []struct {
		token  string
		status int
	}{{"", 401}, {f.tok("D1r"), 403}, {f.tok("APPrw"), 403}, {"garbage", 401}} {
		_, res, err := dialWS(t, f.s, tc.token, "")
		if err == nil || res == nil || res.StatusCode != tc.status {
			t.Errorf("token %.10q: %v %v, want %d", tc.token, err, res, tc.status)
		}
	}
	// A ticket bought with the token opens one connection.
	r := f.s.do(t, "POST", "/presenced/tickets", f.tok("D1rw"), nil)
	wantStatus(t, r, http.StatusCreated)
	tk := r.str("ticket")
	if len(tk) < 40 || strings.Contains(tk, ".") {
		t.Fatalf("ticket %q", tk)
	}
	c, res, err := dialWS(t, f.s, "", "?ticket="+tk)
	if err != nil {
		t.Fatalf("dial with a ticket: %v %v", err, res)
	}
	c.send(map[string]any{"type": "hello", "device": "browser"})
	c.next("ready")
	f.wantPresence(f.U1, "Available", "Available")
	if _, res, err := dialWS(t, f.s, "", "?ticket="+tk); err == nil || res.StatusCode != 401 {
		t.Errorf("a used ticket: %v %v, want 401", err, res)
	}
	// A ticket expires within a minute.
	tk = f.s.do(t, "POST", "/presenced/tickets", f.tok("D1rw"), nil).str("ticket")
	advance(t, "PT61S")
	if _, res, err := dialWS(t, f.s, "", "?ticket="+tk); err == nil || res.StatusCode != 401 {
		t.Errorf("an expired ticket: %v %v, want 401", err, res)
	}
	wantStatus(t, f.s.do(t, "POST", "/presenced/tickets", "", nil), 401)

	// A token that expires ends the connection.
	claims := f.delegated(f.T, f.U2, f.A, "Presence.ReadWrite")
	claims["exp"] = time.Now().Add(2 * time.Second).Unix()
	short := connectAs(t, f.s, f.mint(claims), "phone")
	if e := short.next("error"); e["code"] != "InvalidAuthenticationToken" {
		t.Errorf("expiry: %v", e)
	}
	if code := short.closeCode(); code != 4401 {
		t.Errorf("expired token closed with %d, want 4401", code)
	}
}

func TestConnectWatch(t *testing.T) {
	f := newFixture(t)
	watcher := connectAs(t, f.s, f.mint(f.delegated(f.T, f.U3, f.A, "Presence.ReadWrite", "Presence.Read.All")), "w")
	watcher.send(map[string]any{"type": "watch", "ids": []string{f.U1, f.U2, strings.ToUpper(f.U3)}})
	snap := watcher.next("snapshot")
	ps, _ := snap["presences"].([]any)
	if len(ps) != 3 {
		t.Fatalf("snapshot %v", snap)
	}
	if p := ps[2].(map[string]any); p["id"] != f.U3 || p["availability"] != "Available" {
		t.Errorf("own presence in the snapshot: %v", p)
	}
	// A user of another tenant with the same id changes nothing here.
	other := f.inTenant(newGUID())
	connectAs(t, other.s, other.tok("D1rw"), "laptop")
	other.wantPresence(other.U1, "Available", "Available")
	// U1 connects, goes busy, closes: three changes, in order.
	c := connectAs(t, f.s, f.tok("D1rw"), "laptop")
	c.send(map[string]any{"type": "state", "availability": "Busy", "activity": "InACall"})
	c.sync()
	c.bye()
	waitOpen(t, f.s, 2)
	advance(t, "PT30S")
	var got []string
	var seqs []string
	for range 3 {
		m := watcher.next("change")
		if m["id"] != f.U1 {
			t.Fatalf("change of %v, want only %s's", m["id"], f.U1)
		}
		got = append(got, fmt.Sprint(m["availability"], "/", m["activity"]))
		seqs = append(seqs, fmt.Sprint(m["sequenceNumber"]))
	}
	if want := "[Available/Available Busy/InACall Offline/Offline]"; fmt.Sprint(got) != want {
		t.Errorf("changes %v, want %s", got, want)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Errorf("sequenceNumbers out of order: %v", seqs)
		}
	}
	watcher.send(map[string]any{"type": "unwatch", "ids": []string{f.U1}})
	watcher.sync()
	connectAs(t, f.s, f.tok("D1rw"), "laptop2")
	f.wantPresence(f.U1, "Available", "Available")
	watcher.sync()
	if p := watcher.pending(); len(p) != 0 {
		t.Errorf("after unwatch: %v", p)
	}
	// 650 at most.
	watcher.send(map[string]any{"type": "watch", "ids": manyGUIDs(650)})
	if e := watcher.next("error"); e["code"] != "InvalidArgument" {
		t.Errorf("651 watched: %v", e)
	}
}

// A connection from which nothing is heard (it does not answer pings) is
// dead after the timeout; its session then ends after the grace window.
func TestConnectSilentConnectionIsDead(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--connection-heartbeat", "200ms", "--connection-timeout", "2s", "--connection-grace", "10s"), nil)
	f := newFixture(t)
	f.s = s
	c, _, err := dialWS(t, s, f.tok("D1rw"), "")
	if err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"type": "hello", "device": "laptop"})
	c.next("ready")
	f.wantPresence(f.U1, "Available", "Available")
	// A raw client that stops reading answers no ping.
	raw, _, err := websocket.Dial(context.Background(), "ws://"+strings.TrimPrefix(s.base, "http://")+"/presenced/connect",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + f.tok("D2rw")}}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseNow()
	if err := raw.Write(context.Background(), websocket.MessageText, []byte(`{"type":"hello","device":"d"}`)); err != nil {
		t.Fatal(err)
	}
	f.eventuallyPresence(f.U2, "Available", "Available")
	// The reading client answers pings and stays, the other is cut off.
	var metrics string
	eventually(t, 10*time.Second, func() bool {
		metrics = string(s.do(t, "GET", "/metrics", "", nil).Body)
		return strings.Contains(metrics, "presenced_connection_timeouts_total 1\n")
	}, func() string { return "no timeout counted:\n" + grepLines(metrics, "presenced_connection") })
	waitOpen(t, s, 1)
	advanceOn(t, s, "PT10S")
	f.eventuallyPresence(f.U2, "Offline", "Offline")
	f.wantPresence(f.U1, "Available", "Available")
	select {
	case <-c.closed:
		t.Fatalf("the live connection ended: %v", c.err)
	default:
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
