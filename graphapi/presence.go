package graphapi

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	presence "github.com/presenced/presenced"
)

// selectable are the properties $select may name.
var selectable = []string{"id", "availability", "activity", "statusMessage", "outOfOfficeSettings", "sequenceNumber", "workLocation"}

// base is the URL @odata.context starts with: the public URL, or the
// request's own scheme and host.
func (s *Server) base(r *http.Request, c *call) string {
	if s.publicURL != "" {
		return s.publicURL + "/" + c.version
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/" + c.version
}

// parseSelect reads $select; nil means every property, as does "*" (OData's
// every structural property) in the list. $expand is refused: presence has
// no navigation properties.
func parseSelect(q url.Values) ([]string, error) {
	if q.Has("$expand") {
		return nil, presence.Errorf(presence.CodeBadRequest, "Parsing OData Select and Expand failed: presence has no navigation properties to expand.")
	}
	if !q.Has("$select") {
		return nil, nil
	}
	var sel []string
	for _, p := range strings.Split(q.Get("$select"), ",") {
		p = strings.TrimSpace(p)
		if p == "*" {
			return nil, nil
		}
		i := slices.IndexFunc(selectable, func(s string) bool { return strings.EqualFold(s, p) })
		if i < 0 {
			return nil, presence.Errorf(presence.CodeBadRequest, "Could not find a property named '%s' on type 'microsoft.graph.presence'.", p)
		}
		sel = append(sel, selectable[i])
	}
	return sel, nil
}

func (s *Server) getPresence(w http.ResponseWriter, r *http.Request, c *call) error {
	user, err := c.target()
	if err != nil {
		return err
	}
	if err := c.principal.CanRead(user); err != nil {
		return err
	}
	var sel []string
	if r.URL.RawQuery != "" {
		if sel, err = parseSelect(r.URL.Query()); err != nil {
			return err
		}
	}
	proj := ""
	if sel != nil {
		proj = "(" + strings.Join(sel, ",") + ")"
	}
	var context string
	if c.alias == aliasCommunications {
		context = s.base(r, c) + "/$metadata#communications/presences" + proj + "/$entity"
	} else {
		context = s.base(r, c) + "/$metadata#users('" + user + "')/presence" + proj + "/$entity"
	}
	b := make([]byte, 0, 512)
	err = s.svc.ReadEach(r.Context(), c.principal.Tenant, []string{user}, func(_ int, v *presence.View) {
		b = appendPresence(b, context, user, *v, c.principal.SeesPrivateStatus(user), sel)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// readMany answers the views of ids (distinct, in order) as a collection,
// encoded into sc's buffer.
func (s *Server) readMany(w http.ResponseWriter, r *http.Request, c *call, ids []string, context string, sc *bulkScratch) error {
	b := sc.out[:0]
	if need := 64 + len(context) + len(ids)*300; cap(b) < need { // a presence with its workLocation is ~285 bytes
		b = make([]byte, 0, need)
	}
	b = append(b, `{"@odata.context":`...)
	b = appendString(b, context)
	b = append(b, `,"value":[`...)
	err := s.svc.ReadEach(r.Context(), c.principal.Tenant, ids, func(i int, v *presence.View) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPresence(b, "", ids[i], *v, c.principal.SeesPrivateStatus(ids[i]), nil)
	})
	sc.out = b
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
	return nil
}

// bulkScratch is the memory of one bulk read (up to 650 ids), kept in a
// pool and used again: the set that removes duplicate ids, the ids, and
// the answer's buffer (about 190 KB for 650 users). Allocated afresh for
// every request, the buffer alone was a large allocation to zero, fault in
// and collect each time.
type bulkScratch struct {
	seen map[string]struct{}
	ids  []string
	out  []byte
}

// maxPooledAnswer bounds the answer buffer a bulkScratch keeps.
const maxPooledAnswer = 1 << 20

// scratch returns a bulk read's scratch memory, empty.
func (s *Server) scratch() *bulkScratch {
	if sc, ok := s.bulk.Get().(*bulkScratch); ok {
		return sc
	}
	return newScratch()
}

// newScratch returns empty scratch memory for a bulk read; pooled ones
// keep what they grew to. The event stream takes one it keeps, as its ids
// live as long as it does.
func newScratch() *bulkScratch { return &bulkScratch{seen: map[string]struct{}{}} }

// release empties sc (keeping no id or answer alive) and pools it again.
func (s *Server) release(sc *bulkScratch) {
	clear(sc.seen)
	clear(sc.ids)
	sc.ids = sc.ids[:0]
	if cap(sc.out) > maxPooledAnswer {
		sc.out = nil
	}
	sc.out = sc.out[:0]
	s.bulk.Put(sc)
}

// distinctIDs checks and canonicalizes 1..650 GUIDs, keeping the first of
// duplicates; the limit counts the ids sent (getPresencesByUserId, 1.4).
func distinctIDs(raw []string, sc *bulkScratch) ([]string, error) {
	if len(raw) > presence.MaxIDs {
		return nil, presence.Errorf(presence.CodeBadRequest, "The number of ids exceeds the maximum of 650.")
	}
	return canonicalIDs(raw, sc)
}

// canonicalIDs checks and canonicalizes at least one GUID into sc's ids,
// keeping the first of duplicates.
func canonicalIDs(raw []string, sc *bulkScratch) ([]string, error) {
	if len(raw) == 0 {
		return nil, presence.Errorf(presence.CodeBadRequest, "At least one id is required.")
	}
	out := sc.ids[:0]
	for _, id := range raw {
		g, ok := presence.CanonicalGUID(id)
		if !ok {
			return nil, presence.Errorf(presence.CodeBadRequest, "Invalid object identifier '%s'.", id)
		}
		if _, dup := sc.seen[g]; !dup {
			sc.seen[g] = struct{}{}
			out = append(out, g)
		}
	}
	sc.ids = out
	return out, nil
}

func (s *Server) getPresencesByUserID(w http.ResponseWriter, r *http.Request, c *call) error {
	can := c.principal.CanReadMany
	if c.version == "beta" {
		can = c.principal.CanReadManyOnBeta
	}
	if err := can(); err != nil {
		return err
	}
	o, err := readBody(r, "getPresencesByUserId", false)
	if err != nil {
		return err
	}
	if err := o.only("ids"); err != nil {
		return err
	}
	raw, ok, err := o.strings("ids")
	if err != nil {
		return err
	}
	if !ok {
		return presence.Errorf(presence.CodeBadRequest, "The parameter 'ids' is required.")
	}
	sc := s.scratch()
	defer s.release(sc)
	ids, err := distinctIDs(raw, sc)
	if err != nil {
		return err
	}
	return s.readMany(w, r, c, ids, s.base(r, c)+"/$metadata#Collection(microsoft.graph.presence)", sc)
}

// filterIDs reads the $filter a request on the presence collection must
// carry, "id in ('{id}',...)" or "id eq '{id}'", as distinct canonical
// GUIDs in order. The cap is the subscription resource's (1.3, 4.2 #10):
// 650 distinct ids, however often they are repeated; ParseIDFilter enforces
// it, and canonicalizing only merges more values.
func filterIDs(q url.Values, sc *bulkScratch) ([]string, error) {
	if !q.Has("$filter") {
		return nil, presence.Errorf(presence.CodeBadRequest, "A $filter on id is required.")
	}
	raw, err := presence.ParseIDFilter(q.Get("$filter"))
	if err != nil {
		return nil, err
	}
	return canonicalIDs(raw, sc)
}

func (s *Server) listPresences(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := c.principal.CanReadMany(); err != nil {
		return err
	}
	sc := s.scratch()
	defer s.release(sc)
	ids, err := filterIDs(r.URL.Query(), sc)
	if err != nil {
		return err
	}
	return s.readMany(w, r, c, ids, s.base(r, c)+"/$metadata#communications/presences", sc)
}

// action serves a presence action: it resolves and authorizes the target
// user, reads the body as the operation op with only the members allowed,
// builds the command and applies it, and answers 200 with no body.
func (s *Server) action(op string, emptyOK bool, allowed []string, build func(o *object, c *call) (presence.Command, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		user, err := c.target()
		if err != nil {
			return err
		}
		if err := c.principal.CanWrite(user); err != nil {
			return err
		}
		o, err := readBody(r, op, emptyOK)
		if err != nil {
			return err
		}
		if err := o.only(allowed...); err != nil {
			return err
		}
		cmd, err := build(o, c)
		if err != nil {
			return err
		}
		if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, cmd); err != nil {
			return err
		}
		// Success is 200 with no body and no content type.
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// strs reads string members into targets, given as name, pointer pairs.
func (o *object) strs(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		v, err := o.str(pairs[i].(string))
		if err != nil {
			return err
		}
		*pairs[i+1].(*string) = v
	}
	return nil
}

func buildSetPresence(o *object, c *call) (presence.Command, error) {
	cmd := &presence.SetPresence{CallerApp: c.principal.AppID}
	if err := o.strs("sessionId", &cmd.SessionID, "availability", &cmd.Availability, "activity", &cmd.Activity); err != nil {
		return nil, err
	}
	var err error
	cmd.Expiration, err = o.duration("expirationDuration")
	return cmd, err
}

func buildClearPresence(o *object, c *call) (presence.Command, error) {
	cmd := &presence.ClearPresence{CallerApp: c.principal.AppID}
	return cmd, o.strs("sessionId", &cmd.SessionID)
}

func buildSetPreferred(o *object, _ *call) (presence.Command, error) {
	cmd := &presence.SetPreferred{}
	if err := o.strs("availability", &cmd.Availability, "activity", &cmd.Activity); err != nil {
		return nil, err
	}
	var err error
	cmd.Expiration, err = o.duration("expirationDuration")
	return cmd, err
}

func buildClearPreferred(*object, *call) (presence.Command, error) {
	return presence.ClearPreferred{}, nil
}

func buildSetStatusMessage(o *object, _ *call) (presence.Command, error) {
	sm, err := o.obj("statusMessage")
	if err != nil {
		return nil, err
	}
	if sm == nil {
		return nil, presence.Errorf(presence.CodeInvalidArgument, "The parameter 'statusMessage' is required.")
	}
	if err := sm.only("message", "expiryDateTime", "publishedDateTime"); err != nil {
		return nil, err
	}
	msg, err := sm.obj("message")
	if err != nil {
		return nil, err
	}
	if msg == nil {
		return nil, presence.Errorf(presence.CodeInvalidArgument, "The property 'statusMessage.message' is required.")
	}
	if err := msg.only("content", "contentType"); err != nil {
		return nil, err
	}
	cmd := &presence.SetStatusMessage{}
	if err := msg.strs("content", &cmd.Content, "contentType", &cmd.ContentType); err != nil {
		return nil, err
	}
	exp, err := sm.obj("expiryDateTime")
	if err != nil || exp == nil {
		return cmd, err
	}
	if err := exp.only("dateTime", "timeZone"); err != nil {
		return nil, err
	}
	cmd.HasExpiry = true
	return cmd, exp.strs("dateTime", &cmd.ExpiryDateTime, "timeZone", &cmd.ExpiryTimeZone)
}
