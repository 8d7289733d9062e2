package e2e

// The presence event stream: GET /communications/presences/stream?$filter=
// id in (…) answers Server-Sent Events, first the current presence of each
// requested user, then every change of their visible availability or
// activity, whoever made it; the event id is the user's sequenceNumber.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	ID, Event string
	Data      map[string]any
	Raw       string
}

// eventStream is an open stream.
type eventStream struct {
	res    *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// streamClient has no overall timeout: a stream stays open; each test
// cancels its own.
var streamClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// openStream opens the stream of users with token; it returns the response
// (for error cases) and, on 200, the stream.
func openStream(t testing.TB, s *server, version, token string, users ...string) (*http.Response, *eventStream) {
	t.Helper()
	return openStreamAt(t, s, ownStream, token, users...)
}

// openStreamAt is openStream at path (the stream's address, without query).
func openStreamAt(t testing.TB, s *server, path, token string, users ...string) (*http.Response, *eventStream) {
	t.Helper()
	q := make([]string, len(users))
	for i, u := range users {
		q[i] = "'" + u + "'"
	}
	filter := "id in (" + strings.Join(q, ",") + ")"
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path+"?$filter="+url.QueryEscape(filter), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := streamClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET stream: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		cancel()
		return res, nil
	}
	es := newEventStream(res, cancel)
	t.Cleanup(func() {
		cancel()
		res.Body.Close()
	})
	return res, es
}

// next returns the next event, failing after a deadline.
func (es *eventStream) next(t testing.TB) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-es.events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(deliveryWithin):
		t.Fatalf("no event within %v", deliveryWithin)
	}
	return sseEvent{}
}

// none checks no event is waiting (after something that must not emit one
// and a marker that must: call it with the marker's event in hand).
func (es *eventStream) none(t testing.TB, what string) {
	t.Helper()
	select {
	case ev := <-es.events:
		t.Errorf("%s: unexpected event %s %s", what, ev.ID, ev.Raw)
	default:
	}
}

func (ev sseEvent) str(k string) string { s, _ := ev.Data[k].(string); return s }
func (ev sseEvent) pair() string        { return ev.str("availability") + "/" + ev.str("activity") }

// wantEvent checks an event is the presence of user with pair, its id the
// sequence number (and equal to the data's, when the data carries one).
func wantEvent(t testing.TB, ev sseEvent, user, pair string) {
	t.Helper()
	if ev.str("id") != user || ev.pair() != pair {
		t.Errorf("event %s: %s of %s, want %s of %s", ev.ID, ev.pair(), ev.str("id"), pair, user)
	}
	if !seqRE.MatchString(ev.ID) {
		t.Errorf("event id %q, want a sequenceNumber", ev.ID)
	}
	if s, ok := ev.Data["sequenceNumber"]; ok && s != ev.ID {
		t.Errorf("event id %q, data.sequenceNumber %v: want equal", ev.ID, s)
	}
}

func TestPresenceStream(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
		seq1 := f.seqOf(f.U1)
		res, es := openStream(t, f.s, f.v, f.tok("D1ra"), f.U1, f.U2)
		if es == nil {
			t.Fatalf("GET stream -> %d, want 200", res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Errorf("stream Content-Type %q, want text/event-stream", ct)
		}
		// The snapshot: both users, in request order.
		ev := es.next(t)
		wantEvent(t, ev, f.U1, "Available/Available")
		if ev.ID != seq1 {
			t.Errorf("snapshot of U1: id %q, want GET's sequenceNumber %q", ev.ID, seq1)
		}
		ev = es.next(t)
		wantEvent(t, ev, f.U2, "Offline/Offline")
		if ev.ID != f.seqOf(f.U2) {
			t.Errorf("snapshot of U2: id %q, want GET's sequenceNumber %q", ev.ID, f.seqOf(f.U2))
		}

		// An API change.
		f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
		ev = es.next(t)
		wantEvent(t, ev, f.U2, "Busy/InACall")
		if ev.ID != f.seqOf(f.U2) {
			t.Errorf("U2's change: id %q, GET says %q", ev.ID, f.seqOf(f.U2))
		}

		// Nothing for a user not in the filter, nor for a refresh; then a
		// clock-caused change (the fade at +5 minutes).
		f.mustSet(f.U3, "Busy", "InACall", "PT1H", "APPrw")
		f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
		advance(t, "PT5M")
		ev = es.next(t)
		wantEvent(t, ev, f.U1, "Available/AvailableInactive")
		if ev.ID <= seq1 || ev.ID != f.seqOf(f.U1) {
			t.Errorf("U1's fade: id %q, want GET's %q (after %q)", ev.ID, f.seqOf(f.U1), seq1)
		}
		es.none(t, "a refresh and another user's change")

		// A hook-caused change.
		f.clientSession(f.U2, "phone", "DoNotDisturb", "Presenting", "")
		wantEvent(t, es.next(t), f.U2, "DoNotDisturb/Presenting")
	})
}

func TestPresenceStreamPermissions(t *testing.T) {
	f := newFixture(t)
	// Presence.Read: self only.
	res, _ := openStream(t, f.s, f.v, f.tok("D1r"), f.U2)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("D1r on U2's stream -> %d, want 403", res.StatusCode)
	}
	res, _ = openStream(t, f.s, f.v, f.tok("D1r"), f.U1, f.U2)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("D1r on U1 and U2's stream -> %d, want 403", res.StatusCode)
	}
	res, es := openStream(t, f.s, f.v, f.tok("D1r"), f.U1)
	if es == nil {
		t.Errorf("D1r on its own stream -> %d, want 200", res.StatusCode)
	} else {
		wantEvent(t, es.next(t), f.U1, "Offline/Offline")
	}
	// No token: 401; no permission at all: 403; an app with Presence.Read.All
	// may read.
	res, _ = openStream(t, f.s, f.v, "", f.U1)
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token -> %d, want 401", res.StatusCode)
	}
	res, _ = openStream(t, f.s, f.v, f.tok("D1x"), f.U1)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("D1x -> %d, want 403", res.StatusCode)
	}
	res, es = openStream(t, f.s, f.v, f.tok("APPr"), f.U2)
	if es == nil {
		t.Errorf("APPr -> %d, want 200", res.StatusCode)
	}
	// Another tenant's token sees its own U1, not tenant one's.
	f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
	g := f.inTenant(newGUID())
	res, es = openStream(t, g.s, g.v, g.tok("D1ra"), g.U1)
	if es == nil {
		t.Fatalf("other tenant -> %d", res.StatusCode)
	}
	wantEvent(t, es.next(t), g.U1, "Offline/Offline")
	f.mustSet(f.U1, "Away", "Away", "PT1H", "APPrw")
	g.mustSet(g.U1, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
	wantEvent(t, es.next(t), g.U1, "DoNotDisturb/Presenting")
	es.none(t, "another tenant's change")
}

// newEventStream reads Server-Sent Events from res into an eventStream.
func newEventStream(res *http.Response, cancel context.CancelFunc) *eventStream {
	es := &eventStream{res: res, events: make(chan sseEvent, 256), cancel: cancel}
	go func() {
		defer close(es.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if len(data) > 0 {
					ev.Raw = strings.Join(data, "\n")
					_ = json.Unmarshal([]byte(ev.Raw), &ev.Data)
					es.events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"): // comment (keep-alive)
			case strings.HasPrefix(line, "id:"):
				ev.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
			case strings.HasPrefix(line, "event:"):
				ev.Event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			}
		}
	}()
	return es
}
