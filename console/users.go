package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
)

// Paging of the user list.
const (
	defaultTop = 50
	maxTop     = 500
	maxSearch  = 36 // a whole GUID
)

// listQuery is the parsed query of GET /presenced/users.
type listQuery struct {
	search string // a lower-case prefix of the user id
	top    int
	after  string // the last id of the previous page
}

// parseListQuery reads search, $top and $skiptoken. A search is a prefix of
// user ids (case-insensitive); the skip token is the last id of the page
// before.
func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{top: defaultTop}
	for name := range q {
		switch name {
		case "search", "$top", "$skiptoken", "tenant":
		default:
			return listQuery{}, presence.Errorf(presence.CodeBadRequest, "Query option '%s' is not supported.", name)
		}
	}
	lq.search = strings.ToLower(strings.TrimSpace(q.Get("search")))
	if len(lq.search) > maxSearch || strings.IndexFunc(lq.search, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f') && r != '-'
	}) >= 0 {
		return listQuery{}, presence.Errorf(presence.CodeBadRequest, "The search must be the start of a user id (hexadecimal digits and dashes).")
	}
	if raw := q.Get("$top"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxTop {
			return listQuery{}, presence.Errorf(presence.CodeBadRequest, "Invalid $top value '%s': want a number from 1 to %d.", raw, maxTop)
		}
		lq.top = n
	}
	if raw := q.Get("$skiptoken"); raw != "" {
		id, ok := presence.CanonicalGUID(raw)
		if !ok {
			return listQuery{}, presence.Errorf(presence.CodeBadRequest, "Invalid $skiptoken '%s'.", raw)
		}
		lq.after = id
	}
	return lq, nil
}

// listUsers serves GET /presenced/users: the users of the tenant that have
// any stored state, ordered by id, a page at a time.
//
// It scans the whole store (every tenant's users) and keeps the page's ids:
// O(all users) time and O($top) memory per request. That is fine for an
// emulator or a tenant of thousands; a store with a per-tenant index would
// make it O(page).
func (c *Console) listUsers(w http.ResponseWriter, r *http.Request, v viewer) error {
	if err := v.mayReadTenant(); err != nil {
		return err
	}
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	// page holds the smallest top+1 matching ids after lq.after, sorted;
	// the extra one tells whether another page follows.
	page := make([]string, 0, lq.top+1)
	count := 0
	err = c.cfg.Store.Scan(r.Context(), func(k presence.Key, st presence.State) error {
		if k.Tenant != v.Tenant || st.IsZero() || !strings.HasPrefix(k.User, lq.search) {
			return nil
		}
		count++
		if k.User <= lq.after {
			return nil
		}
		if len(page) == lq.top+1 && k.User >= page[lq.top] {
			return nil
		}
		i, _ := slices.BinarySearch(page, k.User)
		if len(page) == lq.top+1 {
			page = page[:lq.top]
		}
		page = slices.Insert(page, i, k.User)
		return nil
	})
	if err != nil {
		return err
	}
	more := len(page) > lq.top
	if more {
		page = page[:lq.top]
	}
	states, err := c.cfg.Store.Get(r.Context(), v.Tenant, page)
	if err != nil {
		return err
	}
	now := c.cfg.Service.Clock().Now()
	out := struct {
		Now      time.Time    `json:"now"`
		Count    int          `json:"@odata.count"`
		NextLink string       `json:"@odata.nextLink,omitempty"`
		Value    []userRecord `json:"value"`
	}{Now: now, Count: count, Value: make([]userRecord, 0, len(page))}
	for i, id := range page {
		out.Value = append(out.Value, newUserRecord(id, &states[i], now, v.seesPrivate(id)))
	}
	if more {
		q := url.Values{}
		if lq.search != "" {
			q.Set("search", lq.search)
		}
		q.Set("$top", strconv.Itoa(lq.top))
		q.Set("$skiptoken", page[len(page)-1])
		out.NextLink = "/presenced/users?" + q.Encode()
	}
	return writeJSON(w, out)
}

// getUser serves GET /presenced/users/{id}: one user, as the list shows it.
func (c *Console) getUser(w http.ResponseWriter, r *http.Request, v viewer) error {
	if err := v.mayReadTenant(); err != nil {
		return err
	}
	id, ok := presence.CanonicalGUID(r.PathValue("id"))
	if !ok {
		return presence.Errorf(presence.CodeBadRequest, "Invalid object identifier '%s'.", r.PathValue("id"))
	}
	states, err := c.cfg.Store.Get(r.Context(), v.Tenant, []string{id})
	if err != nil {
		return err
	}
	if states[0].IsZero() {
		return presence.Errorf(presence.CodeNotFound, "No presence state is stored for user '%s' in this tenant.", id)
	}
	now := c.cfg.Service.Clock().Now()
	return writeJSON(w, struct {
		Now time.Time `json:"now"`
		userRecord
	}{now, newUserRecord(id, &states[0], now, v.seesPrivate(id))})
}

// tenants serves GET /presenced/tenants, the operator's tenant switch: the
// tenants that have users with state, and how many. It scans the store.
func (c *Console) tenants(w http.ResponseWriter, r *http.Request, v viewer) error {
	if !v.Operator {
		if err := v.CanReadMany(); err != nil {
			return err
		}
		// A Graph token sees its own tenant only.
		return writeJSON(w, map[string]any{"value": []map[string]any{{"id": v.Tenant}}})
	}
	counts := map[string]int{}
	err := c.cfg.Store.Scan(r.Context(), func(k presence.Key, st presence.State) error {
		if !st.IsZero() {
			counts[k.Tenant]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, map[string]any{"id": id, "users": counts[id]})
	}
	return writeJSON(w, map[string]any{"value": out})
}

// seesPrivate reports whether v sees the private parts of user's status
// message (its published and expiry instants), as Graph decides it.
func (v viewer) seesPrivate(user string) bool { return v.Operator || v.SeesPrivateStatus(user) }

// userRecord is one user as the console shows it: the visible presence and
// everything stored behind it.
type userRecord struct {
	ID              string                       `json:"id"`
	Availability    string                       `json:"availability"`
	Activity        string                       `json:"activity"`
	SequenceNumber  string                       `json:"sequenceNumber"`
	StatusMessage   *statusRecord                `json:"statusMessage"`
	OutOfOffice     presence.OutOfOfficeSettings `json:"outOfOfficeSettings"`
	WorkLocation    *workLocationRecord          `json:"workLocation"` // null when unspecified
	CalendarBusy    bool                         `json:"calendarBusy"`
	PresenceEnabled bool                         `json:"presenceEnabled"`
	Sessions        []sessionRecord              `json:"sessions"`
	Preferred       *preferredRecord             `json:"preferredPresence"`
	NextChangeAt    *time.Time                   `json:"nextChangeAt"`
}

// workLocationRecord is the aggregated work location, as Graph's
// userWorkLocation (placeId null when no place is known).
type workLocationRecord struct {
	Type    string  `json:"workLocationType"`
	Source  string  `json:"source"`
	PlaceID *string `json:"placeId"`
}

type statusRecord struct {
	Content     string     `json:"content"`
	ContentType string     `json:"contentType"`
	PublishedAt *time.Time `json:"publishedDateTime,omitempty"`
	ExpiresAt   *time.Time `json:"expiryDateTime,omitempty"`
}

type sessionRecord struct {
	Kind string `json:"kind"` // application, client, connection or connection_idle
	// ID is the application's id for an application session, the client's
	// id for a client session.
	ID                    string     `json:"id"`
	Availability          string     `json:"availability"`
	Activity              string     `json:"activity"`
	EffectiveAvailability string     `json:"effectiveAvailability"`
	EffectiveActivity     string     `json:"effectiveActivity"`
	RefreshedAt           time.Time  `json:"refreshedAt"`
	ExpiresAt             time.Time  `json:"expiresAt"`
	NextFadeAt            *time.Time `json:"nextFadeAt"`
	// Holder is the process holding a connection's session on Redis: the
	// session lasts while that process lives (its expiresAt is a long
	// lease the process renews).
	Holder string `json:"holder,omitempty"`
}

type preferredRecord struct {
	Availability string    `json:"availability"`
	Activity     string    `json:"activity"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// newUserRecord renders st as the console shows it at now: the visible
// presence, the live sessions with their effective pairs and next fades,
// the preferred presence while it lasts.
func newUserRecord(id string, st *presence.State, now time.Time, private bool) userRecord {
	view := st.ViewAt(now)
	rec := userRecord{
		ID: id, Availability: view.Availability, Activity: view.Activity, SequenceNumber: view.SequenceNumber(),
		OutOfOffice: view.OOF, CalendarBusy: st.CalendarBusy, PresenceEnabled: !st.PresenceDisabled,
		Sessions: []sessionRecord{},
	}
	if s := view.Status; s != nil {
		rec.StatusMessage = &statusRecord{Content: s.Content, ContentType: s.ContentType}
		if private {
			rec.StatusMessage.PublishedAt = &s.PublishedAt
		}
		if s.Expiry != nil && private {
			at := s.Expiry.At
			rec.StatusMessage.ExpiresAt = &at
		}
	}
	if w := view.WorkLocation; w.Type != "" && w.Type != presence.LocationUnspecified {
		rec.WorkLocation = &workLocationRecord{Type: w.Type, Source: w.Source}
		if w.PlaceID != "" {
			rec.WorkLocation.PlaceID = &w.PlaceID
		}
	}
	for i := range st.Sessions {
		se := &st.Sessions[i]
		if !now.Before(se.ExpiresAt) {
			continue
		}
		eff := se.EffectiveAt(now)
		sr := sessionRecord{Kind: "application", ID: se.ID, Availability: se.Pair.Availability, Activity: se.Pair.Activity,
			EffectiveAvailability: eff.Availability, EffectiveActivity: eff.Activity, RefreshedAt: se.RefreshedAt, ExpiresAt: se.ExpiresAt, Holder: se.Holder}
		if se.Kind != presence.AppSession {
			sr.Kind = se.Kind.String() // client, connection or connection_idle
		}
		if t, ok := se.NextFadeAt(now); ok {
			sr.NextFadeAt = &t
		}
		rec.Sessions = append(rec.Sessions, sr)
	}
	if p := st.Preferred; p != nil && now.Before(p.ExpiresAt) {
		rec.Preferred = &preferredRecord{Availability: p.Pair.Availability, Activity: p.Pair.Activity, ExpiresAt: p.ExpiresAt}
	}
	if t, ok := st.NextChange(now); ok {
		rec.NextChangeAt = &t
	}
	return rec
}
