package connect

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMessage(t *testing.T) {
	ok := []string{
		`{"type":"hello","device":"laptop-1"}`,
		`{"type":"hello","device":"d","name":"Ada's phone","availability":"Busy","activity":"InACall","idle":true}`,
		`{"type":"state","availability":"Available","activity":"Available"}`,
		`{"type":"idle"}`,
		`{"type":"active"}`,
		`{"type":"name","name":""}`,
		`{"type":"watch","ids":["5C7F0BB9-3A0E-4D4F-9D39-3F0F7D1B6A10"]}`,
		`{"type":"unwatch","ids":["5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10"]}`,
		`{"type":"ping"}`,
		`{"type":"ping","id":"7"}`,
	}
	for _, m := range ok {
		if _, err := parseMessage([]byte(m)); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	m, _ := parseMessage([]byte(ok[6]))
	if m.IDs[0] != "5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10" {
		t.Errorf("ids are not canonical: %v", m.IDs)
	}
	for _, c := range []struct {
		msg   string
		fatal bool
	}{
		{`hello`, true},
		{`[]`, true},
		{`{}`, true},
		{`{"type":"dance"}`, true},
		{`{"type":"hello"}`, true},
		{`{"type":"hello","device":"a b"}`, true},
		{`{"type":"hello","device":"d","availability":"Busy"}`, true},
		{`{"type":"hello","device":"d","colour":1}`, true},
		{`{"type":"hello","device":"d"} {}`, true},
		{`{"type":"hello","device":"d","name":"` + strings.Repeat("n", 129) + `"}`, true},
		{`{"type":"state","availability":"Busy"}`, false},
		{`{"type":"idle","ids":[]}`, false},
		{`{"type":"watch","ids":[]}`, false},
		{`{"type":"watch","ids":["x"]}`, false},
		{`{"type":"watch","ids":["` + strings.Repeat(`5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10","`, 650) + `5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10"]}`, false},
		{`{"type":"ping","id":"` + strings.Repeat("x", 65) + `"}`, false},
		{`{"type":"name"}`, false},
	} {
		_, err := parseMessage([]byte(c.msg))
		var pe *protocolError
		if !errors.As(err, &pe) {
			t.Errorf("%.60s: %v, want a protocol error", c.msg, err)
			continue
		}
		if pe.Fatal != c.fatal {
			t.Errorf("%.60s: fatal %v, want %v (%v)", c.msg, pe.Fatal, c.fatal, pe)
		}
	}
}

// FuzzParseMessage: any input is a valid message or a protocol error,
// never a panic, and an error's message does not echo the input at length.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{`{"type":"hello","device":"d","availability":"Busy","activity":"Busy"}`, `{"type":"watch","ids":["5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10"]}`, `{"type":"ping","id":"1"}`, `{`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseMessage(data)
		if err != nil {
			var pe *protocolError
			if !errors.As(err, &pe) {
				t.Fatalf("%T %v", err, err)
			}
			if len(pe.Message) > 300 {
				t.Fatalf("error message of %d bytes", len(pe.Message))
			}
			return
		}
		switch m.Type {
		case typeHello:
			if m.Device == "" || (m.Availability == nil) != (m.Activity == nil) {
				t.Fatalf("accepted hello %+v", m)
			}
		case typeWatch, typeUnwatch:
			if len(m.IDs) == 0 || len(m.IDs) > MaxWatch {
				t.Fatalf("accepted %d ids", len(m.IDs))
			}
		case typeState, typeIdle, typeActive, typeName, typePing:
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		if m.Name != nil && len(*m.Name) > MaxNameLength {
			t.Fatalf("name of %d bytes", len(*m.Name))
		}
	})
}
