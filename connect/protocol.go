package connect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	presence "github.com/presenced/presenced"
)

// The limits of the protocol.
const (
	// MaxWatch is how many users one connection may watch.
	MaxWatch = 650
	// MaxNameLength bounds a device name, in bytes.
	MaxNameLength = 128
	// MaxPingID bounds the id a ping carries.
	MaxPingID = 64
	// MaxMessageBytes bounds one message from a client.
	MaxMessageBytes = 64 << 10
)

// The types of the messages a client sends.
const (
	typeHello   = "hello"
	typeState   = "state"
	typeIdle    = "idle"
	typeActive  = "active"
	typeName    = "name"
	typeWatch   = "watch"
	typeUnwatch = "unwatch"
	typePing    = "ping"
)

// clientMessage is one message from a client, as parsed and validated by
// parseMessage; which members are set depends on Type.
type clientMessage struct {
	Type string `json:"type"`
	// Device is hello's device id, the session's id.
	Device string `json:"device"`
	// Name is the device's name (hello, name).
	Name *string `json:"name"`
	// Availability and Activity are the state (hello, state).
	Availability *string `json:"availability"`
	Activity     *string `json:"activity"`
	// Idle is hello's optional "the person is idle already".
	Idle *bool `json:"idle"`
	// IDs are the users to watch or unwatch.
	IDs []string `json:"ids"`
	// ID is a ping's optional id, echoed in the pong.
	ID *string `json:"id"`
}

// protocolError is a message the server cannot take: the client is told
// with an error message, and the connection is closed when Fatal.
type protocolError struct {
	Code    presence.Code
	Message string
	Fatal   bool
}

func (e *protocolError) Error() string { return string(e.Code) + ": " + e.Message }

func badMessage(format string, args ...any) *protocolError {
	return &protocolError{Code: presence.CodeBadRequest, Message: fmt.Sprintf(format, args...), Fatal: true}
}

func invalid(format string, args ...any) *protocolError {
	return &protocolError{Code: presence.CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}

// parseMessage decodes and checks one text message: a JSON object with a
// known "type" and the members that type allows. Anything else is a
// *protocolError; a message that is not JSON, or of an unknown type, is
// fatal.
func parseMessage(data []byte) (clientMessage, error) {
	var m clientMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, badMessage("A message must be one JSON object of known members: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return m, badMessage("A message must be one JSON object and nothing after it.")
	}
	has := func(names ...string) error {
		set := map[string]bool{
			"device": m.Device != "", "name": m.Name != nil, "availability": m.Availability != nil,
			"activity": m.Activity != nil, "idle": m.Idle != nil, "ids": m.IDs != nil, "id": m.ID != nil,
		}
		for _, n := range names {
			delete(set, n)
		}
		for n, ok := range set {
			if ok {
				return invalid("The member '%s' is not allowed in a '%s' message.", n, m.Type)
			}
		}
		return nil
	}
	switch m.Type {
	case typeHello:
		if err := has("device", "name", "availability", "activity", "idle"); err != nil {
			return m, err
		}
		if !presence.ValidDeviceID(m.Device) {
			return m, badMessage("A hello needs a 'device' id of 1 to %d characters from A-Z, a-z, 0-9 and '._:-'.", presence.MaxDeviceIDLength)
		}
		if (m.Availability == nil) != (m.Activity == nil) {
			return m, badMessage("A hello has both 'availability' and 'activity', or neither.")
		}
		if m.Name != nil && len(*m.Name) > MaxNameLength {
			return m, badMessage("A device name is at most %d bytes.", MaxNameLength)
		}
	case typeState:
		if err := has("availability", "activity"); err != nil {
			return m, err
		}
		if m.Availability == nil || m.Activity == nil {
			return m, invalid("A state message needs 'availability' and 'activity'.")
		}
	case typeIdle, typeActive:
		if err := has(); err != nil {
			return m, err
		}
	case typeName:
		if err := has("name"); err != nil {
			return m, err
		}
		if m.Name == nil || len(*m.Name) > MaxNameLength {
			return m, invalid("A name message needs a 'name' of at most %d bytes.", MaxNameLength)
		}
	case typeWatch, typeUnwatch:
		if err := has("ids"); err != nil {
			return m, err
		}
		if len(m.IDs) == 0 || len(m.IDs) > MaxWatch {
			return m, invalid("A %s message needs 'ids', 1 to %d user ids.", m.Type, MaxWatch)
		}
		for i, id := range m.IDs {
			c, ok := presence.CanonicalGUID(id)
			if !ok {
				return m, invalid("Invalid object identifier '%.64s'.", id)
			}
			m.IDs[i] = c
		}
	case typePing:
		if err := has("id"); err != nil {
			return m, err
		}
		if m.ID != nil && len(*m.ID) > MaxPingID {
			return m, invalid("A ping id is at most %d bytes.", MaxPingID)
		}
	case "":
		return m, badMessage("A message needs a 'type'.")
	default:
		return m, badMessage("Unknown message type '%.32s'.", m.Type)
	}
	return m, nil
}

// jsonProblem is a short description of a JSON error, without echoing the
// input at length.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("member '%s' has the wrong type", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return msg
}

// The messages the server sends.

type readyMessage struct {
	Type    string `json:"type"`
	User    string `json:"user"`
	Device  string `json:"device"`
	Resumed bool   `json:"resumed"`
	// Heartbeat is how often, in seconds, the server pings, and
	// Timeout how long, in seconds, a silent connection lives.
	Heartbeat float64 `json:"heartbeatSeconds"`
	Timeout   float64 `json:"timeoutSeconds"`
}

type presenceEntry struct {
	ID             string `json:"id"`
	Availability   string `json:"availability"`
	Activity       string `json:"activity"`
	SequenceNumber string `json:"sequenceNumber"`
}

type snapshotMessage struct {
	Type      string          `json:"type"`
	Presences []presenceEntry `json:"presences"`
}

type changeMessage struct {
	Type string `json:"type"`
	presenceEntry
}

type pongMessage struct {
	Type string  `json:"type"`
	ID   *string `json:"id,omitempty"`
}

type errorMessage struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Ref is the type of the message the error is about.
	Ref string `json:"ref,omitempty"`
}

type noticeMessage struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func entry(user string, v presence.View) presenceEntry {
	return presenceEntry{ID: user, Availability: v.Availability, Activity: v.Activity, SequenceNumber: v.SequenceNumber()}
}
