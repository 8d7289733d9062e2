package graphapi

import (
	"slices"
	"strconv"
	"unicode/utf8"

	presence "github.com/presenced/presenced"
)

// appendPresence appends the JSON of a presence entity, in Graph's member
// order, exactly as encoding/json would write it (the tests hold it to
// that), without reflection: presence is the hot path of every read.
// context, when not empty, is the @odata.context; private reports whether
// the reader sees the status message's dates; sel, when not nil, limits the
// properties.
func appendPresence(b []byte, context, user string, v presence.View, private bool, sel []string) []byte {
	want := func(p string) bool { return sel == nil || slices.Contains(sel, p) }
	b = append(b, '{')
	if context != "" {
		b = append(b, `"@odata.context":`...)
		b = appendString(b, context)
		b = append(b, ',')
	}
	b = append(b, `"id":`...)
	b = appendString(b, user)
	if want("availability") {
		b = append(b, `,"availability":`...)
		b = appendString(b, v.Availability)
	}
	if want("activity") {
		b = append(b, `,"activity":`...)
		b = appendString(b, v.Activity)
	}
	if want("statusMessage") {
		b = append(b, `,"statusMessage":`...)
		if st := v.Status; st == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, `{"message":{"content":`...)
			b = appendString(b, st.Content)
			b = append(b, `,"contentType":`...)
			b = appendString(b, st.ContentType)
			b = append(b, '}')
			if private {
				b = append(b, `,"publishedDateTime":"`...)
				b = st.PublishedAt.UTC().AppendFormat(b, presence.GraphTimeLayout)
				b = append(b, '"')
				if e := st.Expiry; e != nil {
					b = append(b, `,"expiryDateTime":{"dateTime":`...)
					b = appendString(b, e.DateTime)
					b = append(b, `,"timeZone":`...)
					b = appendString(b, e.TimeZone)
					b = append(b, '}')
				}
			}
			b = append(b, '}')
		}
	}
	if want("outOfOfficeSettings") {
		b = append(b, `,"outOfOfficeSettings":{"message":`...)
		if v.OOF.Message == nil {
			b = append(b, "null"...)
		} else {
			b = appendString(b, *v.OOF.Message)
		}
		b = append(b, `,"isOutOfOffice":`...)
		b = strconv.AppendBool(b, v.OOF.IsOutOfOffice)
		b = append(b, '}')
	}
	if want("sequenceNumber") {
		b = append(b, `,"sequenceNumber":`...)
		b = append(b, '"')
		b = presence.AppendSequence(b, v.Seq)
		b = append(b, '"')
	}
	if want("workLocation") {
		b = appendWorkLocation(append(b, `,"workLocation":`...), v.WorkLocation)
	}
	return append(b, '}')
}

// appendWorkLocation appends a userWorkLocation; an empty place is null.
func appendWorkLocation(b []byte, w presence.WorkLocation) []byte {
	b = append(b, `{"workLocationType":`...)
	b = appendString(b, w.Type)
	b = append(b, `,"source":`...)
	b = appendString(b, w.Source)
	b = append(b, `,"placeId":`...)
	if w.PlaceID == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, w.PlaceID)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string with encoding/json's escaping:
// quotes, backslashes and control characters, the HTML characters <, > and
// &, U+2028 and U+2029, and invalid UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
