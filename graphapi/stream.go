package graphapi

import (
	"bufio"
	"net/http"
	"time"

	presence "github.com/presenced/presenced"
)

// streamKeepAlive is how often an idle event stream gets a comment line.
const streamKeepAlive = 15 * time.Second

// stream serves GET /communications/presences/stream?$filter=id in (...):
// Server-Sent Events with the current presence of every requested user,
// then each change as it happens, the event id being the user's
// sequenceNumber. It needs the permissions of reading each user.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, c *call) error {
	ids, err := filterIDs(r.URL.Query())
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := c.principal.CanRead(id); err != nil {
			return err
		}
	}
	// Subscribe before reading, so no change falls between the two.
	events, cancel := s.svc.Subscribe(4096)
	defer cancel()
	views, err := s.svc.Read(r.Context(), c.principal.Tenant, ids)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	send := func(user string, v presence.View) error {
		data := appendPresence(nil, "", user, v, c.principal.SeesPrivateStatus(user), nil)
		_, _ = bw.WriteString("id: " + v.SequenceNumber() + "\nevent: presence\ndata: ")
		_, _ = bw.Write(data)
		_, _ = bw.WriteString("\n\n")
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	// The last sequenceNumber sent of each user.
	wanted := make(map[string]uint64, len(ids))
	for i, id := range ids {
		wanted[id] = views[i].Seq
		if err := send(id, views[i]); err != nil {
			return nil // the client went away
		}
	}
	keepAlive := time.NewTicker(streamKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.streamsDone:
			return nil
		case <-keepAlive.C:
			_, _ = bw.WriteString(": keep-alive\n\n")
			if bw.Flush() != nil || rc.Flush() != nil {
				return nil
			}
		case ev := <-events:
			last, ok := wanted[ev.Key.User]
			if !ok || ev.Key.Tenant != c.principal.Tenant || ev.After.Seq <= last {
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
