package graphapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	presence "github.com/presenced/presenced"
)

const msgBadPayload = "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."

// object is one JSON object of a request body, its members kept raw until a
// handler asks for them by name.
type object struct {
	op      string
	members map[string]json.RawMessage
}

// readBody reads the request body as a JSON object of the operation op.
// emptyOK allows an absent or empty body (with or without a content type),
// which reads as an empty object.
func readBody(r *http.Request, op string, emptyOK bool) (*object, error) {
	if emptyOK && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) {
		return &object{op: op}, nil
	}
	data, err := readAll(r)
	if err != nil {
		return nil, err
	}
	if emptyOK && len(bytes.TrimSpace(data)) == 0 {
		return &object{op: op}, nil
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, presence.Errorf(presence.CodeBadRequest, msgBadPayload)
	}
	return parseObject(data, op)
}

// readJSON reads a body that must be labelled JSON.
func readJSON(r *http.Request) ([]byte, error) {
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, presence.Errorf(presence.CodeBadRequest, msgBadPayload)
	}
	return readAll(r)
}

func readAll(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, presence.Errorf(presence.CodeBadRequest, msgBadPayload)
	}
	return data, nil
}

// parseObject parses data as a JSON object of the operation op.
func parseObject(data []byte, op string) (*object, error) {
	if members, ok := plainObject(data); ok {
		return &object{op: op, members: members}, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return nil, presence.Errorf(presence.CodeBadRequest, msgBadPayload)
	}
	return &object{op: op, members: members}, nil
}

func isJSONContentType(ct string) bool {
	switch ct {
	case "":
		return false
	case "application/json":
		return true // the usual header, without parsing it
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// only rejects members other than names, ignoring OData annotations such as
// "@odata.type".
func (o *object) only(names ...string) error {
	for k := range o.members {
		if strings.HasPrefix(k, "@") || strings.Contains(k, "@odata.") {
			continue
		}
		if !slices.Contains(names, k) {
			return presence.Errorf(presence.CodeBadRequest, "The parameter '%s' in the request payload is not a valid parameter for the operation '%s'.", k, o.op)
		}
	}
	return nil
}

// has reports whether the member is present and not null.
func (o *object) has(name string) bool {
	v, ok := o.members[name]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// str returns a string member; absent or null gives "".
func (o *object) str(name string) (string, error) {
	if !o.has(name) {
		return "", nil
	}
	if s, ok := plainString(o.members[name]); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(o.members[name], &s); err != nil {
		return "", presence.Errorf(presence.CodeBadRequest, "The value of the parameter '%s' is not a valid string.", name)
	}
	return s, nil
}

// obj returns a nested object member, nil when absent or null.
func (o *object) obj(name string) (*object, error) {
	if !o.has(name) {
		return nil, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(o.members[name], &members); err != nil {
		return nil, presence.Errorf(presence.CodeBadRequest, "The value of the parameter '%s' is not a valid object.", name)
	}
	return &object{op: o.op, members: members}, nil
}

// strings returns a string-array member.
func (o *object) strings(name string) ([]string, bool, error) {
	if !o.has(name) {
		return nil, false, nil
	}
	if ss, ok := plainStrings(o.members[name]); ok {
		return ss, true, nil
	}
	var ss []string
	if err := json.Unmarshal(o.members[name], &ss); err != nil {
		return nil, true, presence.Errorf(presence.CodeBadRequest, "The value of the parameter '%s' is not a valid collection of strings.", name)
	}
	return ss, true, nil
}

// duration returns an Edm.Duration member, nil when absent or null.
func (o *object) duration(name string) (*time.Duration, error) {
	if !o.has(name) {
		return nil, nil
	}
	s, err := o.str(name)
	if err != nil {
		return nil, err
	}
	d, err := presence.ParseDuration(s)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// plainStrings reads a JSON array of strings without escapes, the common
// shape of an id list, in one pass and one allocation; anything else (escapes, other values)
// reports false for the general decoder to handle. raw was already
// validated as JSON by the decode that split the members.
func plainStrings(raw []byte) ([]string, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	out := make([]string, 0, bytes.Count(raw, []byte{','})+1)
	all := string(raw) // one copy; the strings are slices of it
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return out, true
	}
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(raw[i+1:], '"')
		if end < 0 {
			return nil, false
		}
		str := raw[i+1 : i+1+end]
		if bytes.IndexByte(str, '\\') >= 0 {
			return nil, false
		}
		out = append(out, all[i+1:i+1+end])
		i = skipSpace(raw, i+end+2)
		if i >= len(raw) {
			return nil, false
		}
		switch raw[i] {
		case ',':
			i++
		case ']':
			return out, true
		default:
			return nil, false
		}
	}
}

// plainString reads a JSON string without escapes in one step; raw was
// already validated as JSON by the decode that split the members, so a
// quoted run without a backslash is the string itself. Anything else
// reports false for the general decoder.
func plainString(raw []byte) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	if !utf8.Valid(raw) {
		return "", false // encoding/json would replace the bad bytes
	}
	return vocabulary(raw[1 : len(raw)-1]), true
}

// memberName returns key as a string: the member names of the presence
// actions' bodies without a copy (a switch on string(key) allocates
// nothing), any other name copied.
func memberName(key []byte) string {
	switch string(key) {
	case "sessionId":
		return "sessionId"
	case "availability":
		return "availability"
	case "activity":
		return "activity"
	case "expirationDuration":
		return "expirationDuration"
	case "statusMessage":
		return "statusMessage"
	}
	return string(key)
}

// vocabulary returns v as a string: Graph's availability and activity
// values without a copy, any other value copied.
func vocabulary(v []byte) string {
	switch string(v) {
	case presence.Available:
		return presence.Available
	case presence.AvailableIdle:
		return presence.AvailableIdle
	case presence.Away:
		return presence.Away
	case presence.BeRightBack:
		return presence.BeRightBack
	case presence.Busy:
		return presence.Busy
	case presence.BusyIdle:
		return presence.BusyIdle
	case presence.DoNotDisturb:
		return presence.DoNotDisturb
	case presence.Offline:
		return presence.Offline
	case presence.PresenceUnknown:
		return presence.PresenceUnknown
	case presence.InACall:
		return presence.InACall
	case presence.InAConferenceCall:
		return presence.InAConferenceCall
	case presence.InAMeeting:
		return presence.InAMeeting
	case presence.Presenting:
		return presence.Presenting
	case presence.OutOfOffice:
		return presence.OutOfOffice
	}
	return string(v)
}

// plainObject splits a JSON object whose members are all plain, the shape
// of nearly every request body, in one pass and without copying: keys and
// strings of printable ASCII without escapes, arrays of such strings, true,
// false and null. The members are slices of data. On anything else
// (numbers, nested objects, escapes, other bytes, bad syntax) it reports
// false and encoding/json, which also validates, decides. When it answers,
// it answers what json.Unmarshal into a map of raw members would: the
// last of duplicate keys wins, and the raw values are the values' bytes.
func plainObject(data []byte) (map[string]json.RawMessage, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	members := make(map[string]json.RawMessage, 4)
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return members, skipSpace(data, i+1) == len(data)
	}
	for {
		end, ok := plainToken(data, i)
		if !ok {
			return nil, false
		}
		key := data[i+1 : end-1]
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		start := skipSpace(data, i+1)
		if i, ok = plainValue(data, start); !ok {
			return nil, false
		}
		members[memberName(key)] = data[start:i:i]
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return members, skipSpace(data, i+1) == len(data)
		default:
			return nil, false
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainToken returns the end of the plain string starting at data[i]: a
// quote, printable ASCII other than a quote or a backslash, a quote.
func plainToken(data []byte, i int) (int, bool) {
	if i >= len(data) || data[i] != '"' {
		return 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return 0, false
		}
	}
	return 0, false
}

// plainValue returns the end of the plain value starting at data[i]: a
// plain string, an array of them, true, false or null.
func plainValue(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return 0, false
	}
	switch data[i] {
	case '"':
		return plainToken(data, i)
	case '[':
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == ']' {
			return i + 1, true
		}
		for {
			end, ok := plainToken(data, i)
			if !ok {
				return 0, false
			}
			i = skipSpace(data, end)
			if i >= len(data) {
				return 0, false
			}
			switch data[i] {
			case ',':
				i = skipSpace(data, i+1)
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(data[i:], []byte(lit)) {
			return i + len(lit), true
		}
	}
	return 0, false
}
