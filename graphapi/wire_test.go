package graphapi

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"pgregory.net/rapid"
)

// The reflection-based encoding below is the oracle appendPresence must
// match byte for byte.

// wirePresence is the JSON of a presence entity, in Graph's member order.
type wirePresence struct {
	Context             string            `json:"@odata.context,omitempty"`
	ID                  string            `json:"id,omitempty"`
	Availability        *string           `json:"availability,omitempty"`
	Activity            *string           `json:"activity,omitempty"`
	StatusMessage       *json.RawMessage  `json:"statusMessage,omitempty"`
	OutOfOfficeSettings *wireOOF          `json:"outOfOfficeSettings,omitempty"`
	SequenceNumber      *string           `json:"sequenceNumber,omitempty"`
	WorkLocation        *wireWorkLocation `json:"workLocation,omitempty"`
}

type wireWorkLocation struct {
	WorkLocationType string  `json:"workLocationType"`
	Source           string  `json:"source"`
	PlaceID          *string `json:"placeId"`
}

type wireOOF struct {
	Message       *string `json:"message"`
	IsOutOfOffice bool    `json:"isOutOfOffice"`
}

type wireStatus struct {
	Message           wireItemBody  `json:"message"`
	PublishedDateTime string        `json:"publishedDateTime,omitempty"`
	ExpiryDateTime    *wireDateTime `json:"expiryDateTime,omitempty"`
}

type wireItemBody struct {
	Content     string `json:"content"`
	ContentType string `json:"contentType"`
}

type wireDateTime struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

var nullJSON = json.RawMessage("null")

// toWire is the oracle's presence of user: private reports whether the
// reader sees the status message's dates; sel, when not nil, limits the
// properties.
func toWire(user string, v presence.View, private bool, sel []string) wirePresence {
	want := func(p string) bool { return sel == nil || slices.Contains(sel, p) }
	var w wirePresence
	w.ID = user
	if want("availability") {
		w.Availability = &v.Availability
	}
	if want("activity") {
		w.Activity = &v.Activity
	}
	if want("statusMessage") {
		raw := nullJSON
		if v.Status != nil {
			ws := wireStatus{Message: wireItemBody{Content: v.Status.Content, ContentType: v.Status.ContentType}}
			if private {
				ws.PublishedDateTime = v.Status.PublishedAt.UTC().Format("2006-01-02T15:04:05.0000000Z")
				if e := v.Status.Expiry; e != nil {
					ws.ExpiryDateTime = &wireDateTime{DateTime: e.DateTime, TimeZone: e.TimeZone}
				}
			}
			raw, _ = json.Marshal(ws)
		}
		w.StatusMessage = &raw
	}
	if want("outOfOfficeSettings") {
		w.OutOfOfficeSettings = &wireOOF{Message: v.OOF.Message, IsOutOfOffice: v.OOF.IsOutOfOffice}
	}
	if want("sequenceNumber") {
		seq := v.SequenceNumber()
		w.SequenceNumber = &seq
	}
	if want("workLocation") {
		wl := &wireWorkLocation{WorkLocationType: v.WorkLocation.Type, Source: v.WorkLocation.Source}
		if v.WorkLocation.PlaceID != "" {
			wl.PlaceID = &v.WorkLocation.PlaceID
		}
		w.WorkLocation = wl
	}
	return w
}

func TestAppendPresenceMatchesEncodingJSON(t *testing.T) {
	text := rapid.SampledFrom([]string{"", "In the lab", "<b>&amp;</b>", "quote \" back \\ slash", "tab\tnew\nline\r", "\x00\x1f\x7f",
		"caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff\xfe utf8", "Pacific Standard Time"})
	pairs := rapid.SampledFrom(presence.ClientPairs())
	rapid.Check(t, func(rt *rapid.T) {
		var v presence.View
		v.Pair = pairs.Draw(rt, "pair")
		v.Seq = rapid.Uint64().Draw(rt, "seq")
		if rapid.Bool().Draw(rt, "status") {
			st := &presence.StatusMessage{Content: text.Draw(rt, "content"), ContentType: "text",
				PublishedAt: time.Unix(rapid.Int64Range(0, 4e9).Draw(rt, "pub"), rapid.Int64Range(0, 999999999).Draw(rt, "ns"))}
			if rapid.Bool().Draw(rt, "expiry") {
				st.Expiry = &presence.Expiry{DateTime: text.Draw(rt, "dt"), TimeZone: text.Draw(rt, "tz")}
			}
			v.Status = st
		}
		if rapid.Bool().Draw(rt, "oof") {
			m := text.Draw(rt, "oofmsg")
			v.OOF = presence.OutOfOfficeSettings{IsOutOfOffice: rapid.Bool().Draw(rt, "isoof"), Message: &m}
		}
		v.WorkLocation = presence.WorkLocation{
			Type:    rapid.SampledFrom([]string{"unspecified", "office", "remote", "timeOff"}).Draw(rt, "wlt"),
			Source:  rapid.SampledFrom([]string{"none", "manual", "automatic", "scheduled"}).Draw(rt, "wls"),
			PlaceID: rapid.SampledFrom([]string{"", "b1", "<&>"}).Draw(rt, "place"),
		}
		var sel []string
		if rapid.Bool().Draw(rt, "select") {
			sel = rapid.SliceOfDistinct(rapid.SampledFrom(selectable), func(s string) string { return s }).Draw(rt, "sel")
			slices.Sort(sel)
		}
		private := rapid.Bool().Draw(rt, "private")
		context := rapid.SampledFrom([]string{"", "http://h/v1.0/$metadata#users('x')/presence/$entity"}).Draw(rt, "ctx")
		user := "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
		want := toWire(user, v, private, sel)
		want.Context = context
		wantJSON, err := json.Marshal(want)
		if err != nil {
			rt.Fatal(err)
		}
		got := appendPresence(nil, context, user, v, private, sel)
		if string(got) != string(wantJSON) {
			rt.Fatalf("appendPresence:\n got %s\nwant %s", got, wantJSON)
		}
	})
}
