package console

import (
	"bufio"
	"encoding/json"
	"net/http"
	"time"

	presence "github.com/presenced/presenced"
)

// eventsKeepAlive is how often an idle event stream gets a comment line.
const eventsKeepAlive = 15 * time.Second

// eventsBuffer is how many changes an event stream may fall behind by
// before it is ended.
const eventsBuffer = 4096

// events serves GET /presenced/events: Server-Sent Events of every change
// of a user of v's tenant, each the user's whole record as GET
// /presenced/users/{id} gives it (read from the store when the change is
// seen, so it may already include a later one): the changes of the visible
// pair, and the writes that left the pair as it was (a status message, the
// work location, a session), which Graph's notifications do not carry.
// The first event, "ready", carries the service clock's now. A reader that
// falls so far behind that it missed a change is ended, so that the page
// reconnects and reads the list afresh. Authorized like the user list.
func (c *Console) events(w http.ResponseWriter, r *http.Request, v viewer) error {
	if err := v.mayReadTenant(); err != nil {
		return err
	}
	changes := c.cfg.Service.Feed().WatchAll(eventsBuffer)
	defer changes.Close()
	quiet := c.cfg.Service.WatchQuiet(eventsBuffer)
	defer quiet.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	send := func(event string, data any) error {
		body, err := json.Marshal(data)
		if err != nil {
			return err
		}
		_, _ = bw.WriteString("event: " + event + "\ndata: ")
		_, _ = bw.Write(body)
		_, _ = bw.WriteString("\n\n")
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if send("ready", map[string]any{"now": c.cfg.Service.Clock().Now(), "tenant": v.Tenant}) != nil {
		return nil
	}
	keepAlive := time.NewTicker(eventsKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-c.done:
			return nil
		case <-keepAlive.C:
			_, _ = bw.WriteString(": keep-alive\n\n")
			if bw.Flush() != nil || rc.Flush() != nil {
				return nil
			}
		case <-changes.Overflowed():
			return nil
		case <-quiet.Overflowed():
			return nil
		case ev := <-changes.Events():
			if !c.sendUser(r, v, ev, send) {
				return nil
			}
		case ev := <-quiet.Events():
			if !c.sendUser(r, v, ev, send) {
				return nil
			}
		}
	}
}

// sendUser sends the record of ev's user when it is of v's tenant, and
// reports whether the stream may go on.
func (c *Console) sendUser(r *http.Request, v viewer, ev presence.Event, send func(string, any) error) bool {
	if ev.Key.Tenant != v.Tenant {
		return true
	}
	states, err := c.cfg.Store.Get(r.Context(), v.Tenant, []string{ev.Key.User})
	if err != nil {
		c.cfg.Logger.WarnContext(r.Context(), "console events: reading a changed user", "err", err)
		return true
	}
	now := c.cfg.Service.Clock().Now()
	rec := struct {
		Now time.Time `json:"now"`
		At  time.Time `json:"at"`
		userRecord
	}{now, ev.At, newUserRecord(ev.Key.User, &states[0], now, v.seesPrivate(ev.Key.User))}
	return send("user", rec) == nil
}
