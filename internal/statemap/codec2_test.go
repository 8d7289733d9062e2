package statemap

import (
	"encoding/binary"
	"encoding/hex"
	"reflect"
	"slices"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// richWorkState is richState with every part of the work block set.
func richWorkState() presence.State {
	s := richState()
	s.Work = &presence.WorkState{
		Manual:    &presence.LocationSignal{Type: "office", PlaceID: "b1", Until: t0.Add(8 * time.Hour)},
		Automatic: &presence.LocationSignal{Type: "remote", Until: t0.Add(8 * time.Hour)},
		TimeZone:  "Pacific Standard Time",
		Recurrences: []presence.PlanRecurrence{{
			ID:    "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f11",
			Start: presence.PlanTime{DateTime: "2025-03-10T09:00:00", TimeZone: "Pacific Standard Time"},
			End:   presence.PlanTime{DateTime: "2025-03-10T17:00:00", TimeZone: "Pacific Standard Time"},
			Type:  "office", PlaceID: "b1", Days: 1<<1 | 1<<3 | 1<<5, Interval: 2, FirstDayOfWeek: time.Monday,
			RangeType: "endDate", StartDate: "2025-03-10", EndDate: "2025-06-30", Count: 0, RangeTimeZone: "UTC",
		}},
		Occurrences: []presence.PlanOccurrence{
			{ID: "o1", Start: presence.PlanTime{DateTime: "2025-03-14T00:00:00", TimeZone: "UTC"},
				End:     presence.PlanTime{DateTime: "2025-03-15T00:00:00", TimeZone: "UTC"},
				StartAt: t0.Add(72 * time.Hour), EndAt: t0.Add(96 * time.Hour), Type: "timeOff",
				TimeOff: &presence.TimeOffDetails{Subject: "vacation", IsAllDay: true}},
			{ID: "o2", RecurrenceID: "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f11", StartAt: t0, EndAt: t0.Add(time.Hour), Type: "remote"},
		},
	}
	return s
}

func TestCodecFormat2RoundTrip(t *testing.T) {
	s := richWorkState()
	enc := AppendState(nil, &s)
	if enc[0] != format2 {
		t.Fatalf("format byte %d, want 2", enc[0])
	}
	got := roundTrip(t, s)
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, s))
	}
	// A state without work is still format 1, byte for byte.
	plain := richState()
	if AppendState(nil, &plain)[0] != format1 {
		t.Fatal("a state without work is not format 1")
	}
}

// TestFormat2IsStable pins the bytes of format 2 and its work block.
func TestFormat2IsStable(t *testing.T) {
	const want = "02ff808080808020acbc99abddcdd0ac3082e0a596bb1102000022553876f5ab4529" +
		"bffbcfe50aa89f87050b0282e0a596bb110128636c69656e742d3101118180c58bc6d1" +
		"0100070e8280f89492a527313c703e73746174757320e298953c2f703e15023b323032" +
		"352d30332d31355430383a30303a30302e30303030303030355061636966696320537461" +
		"6e646172642054696d658280f89492a527316177617920756e74696c204d6f6e646179" +
		"020702050b0882a8d6b907284e6f7441576f726420" + format2Work
	s := richWorkState()
	if got := hex.EncodeToString(AppendState(nil, &s)); got != want {
		t.Errorf("richWorkState encodes as\n%s\nwant\n%s", got, want)
	}
	enc, _ := hex.DecodeString(want)
	got, err := DecodeState(string(enc))
	if err != nil {
		t.Fatalf("the pinned encoding does not decode: %v", err)
	}
	if g, w := mustJSON(t, got), mustJSON(t, s); g != w {
		t.Errorf("the pinned encoding decodes as\n%s\nwant\n%s", g, w)
	}
}

func TestFormat2Blocks(t *testing.T) {
	s := richWorkState()
	enc := AppendState(nil, &s)
	for i := range len(enc) {
		if _, err := DecodeState(string(enc[:i])); err == nil {
			t.Errorf("a prefix of %d of %d bytes decodes", i, len(enc))
		}
	}
	// Format 1's body of an empty state; format 2 needs a block after it.
	empty := []byte{format2, 0, 0, 0, 0, 0}
	if _, err := DecodeState(string(empty)); err == nil {
		t.Fatal("format 2 without a block decodes")
	}
	// A later tag is skipped; its bytes need not make sense to us.
	unknown := append(append([]byte{}, enc...), 9, 3, 0xff, 0xfe, 0xfd)
	got, err := DecodeState(string(unknown))
	if err != nil {
		t.Fatalf("an unknown tag: %v", err)
	}
	if g, w := mustJSON(t, got), mustJSON(t, s); g != w {
		t.Errorf("with an unknown tag:\n%s\nwant\n%s", g, w)
	}
	block := func(tag uint64, body ...byte) []byte {
		b := binary.AppendUvarint(nil, tag)
		b = binary.AppendUvarint(b, uint64(len(body)))
		return append(b, body...)
	}
	workEmpty := []byte{0, 0, 0} // no flags, no recurrence, no occurrence
	for name, bad := range map[string][]byte{
		"tag twice":         append(append(append([]byte{}, empty...), block(1, workEmpty...)...), block(1, workEmpty...)...),
		"tags out of order": append(append(append([]byte{}, empty...), block(2)...), block(1, workEmpty...)...),
		"tag zero":          append(append([]byte{}, empty...), block(0)...),
		"length past end":   append(append([]byte{}, empty...), 1, 9, 0, 0, 0),
		"short block":       append(append([]byte{}, empty...), block(1, 0, 0)...),
		"long block":        append(append([]byte{}, empty...), block(1, 0, 0, 0, 0)...),
		"unknown flags":     append(append([]byte{}, empty...), block(1, 8, 0, 0)...),
	} {
		if _, err := DecodeState(string(bad)); err == nil {
			t.Errorf("%s: %x decodes", name, bad)
		}
	}
	if _, err := DecodeState(string(append(append([]byte{}, empty...), block(1, workEmpty...)...))); err != nil {
		t.Errorf("an empty work block: %v", err)
	}
}

// format2Work is the extension richWorkState adds to richState: tag 1,
// its length, and the work block.
const format2Work = "01cd0207266f66666963652262318280a8dcb08c0d2672656d6f7465208280a8dcb0" +
	"8c0d3550616369666963205374616e646172642054696d6501000b0e8c397d0a4b36" +
	"9b3f2a3a1c9e0f1133323032352d30332d31305430393a30303a3030355061636966" +
	"6963205374616e646172642054696d6533323032352d30332d31305431373a30303a" +
	"30303550616369666963205374616e646172642054696d65266f6666696365226231" +
	"2a040227656e64446174652a323032352d30332d31302a323032352d30362d333000" +
	"2355544302226f312033323032352d30332d31345430303a30303a30302355544333" +
	"323032352d30332d31355430303a30303a3030235554438280e8beb6ef758280e0d3" +
	"c8949d012774696d654f66662003287661636174696f6e226f32000b0e8c397d0a4b" +
	"369b3f2a3a1c9e0f1120202020028280c58bc6d1012672656d6f74652000"

// TestOutboxWorkBlock: the work locations of outbox notices go in tag 2,
// written only when one is set.
func TestOutboxWorkBlock(t *testing.T) {
	s := richState()
	s.Outbox[1].Work = presence.WorkLocation{Type: "office", Source: "manual", PlaceID: "b1"}
	enc := AppendState(nil, &s)
	if enc[0] != format2 {
		t.Fatalf("format %d, want 2", enc[0])
	}
	got := roundTrip(t, s)
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, s))
	}
	w := richWorkState()
	w.Outbox[0].Work = presence.WorkLocation{Type: "remote", Source: "scheduled"}
	if got := roundTrip(t, w); !reflect.DeepEqual(got, w) {
		t.Fatalf("with both blocks:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, w))
	}
	// One notice's entry short: the block is refused.
	plain := richState()
	body := AppendState(nil, &plain)
	body[0] = format2
	short := append(append([]byte{}, body...), 2, 3, 32, 32, 32)
	if _, err := DecodeState(string(short)); err == nil {
		t.Error("a tag-2 block for one of two notices decodes")
	}
	full := append(append([]byte{}, body...), 2, 6, 32, 32, 32, 32, 32, 32)
	if _, err := DecodeState(string(full)); err != nil {
		t.Errorf("a tag-2 block for both notices: %v", err)
	}
}

// TestWorkSettingsBlock: tag 3 follows tag 1 and is written only when set.
func TestWorkSettingsBlock(t *testing.T) {
	s := richWorkState()
	s.Work.MaxShared = "approximate"
	enc := AppendState(nil, &s)
	if got := roundTrip(t, s); !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, s))
	}
	plain := richWorkState()
	if len(enc) <= len(AppendState(nil, &plain)) {
		t.Error("the setting takes no bytes")
	}
	// Tag 3 without tag 1 is refused.
	body := richState()
	b := AppendState(nil, &body)
	b[0] = format2
	if _, err := DecodeState(string(append(b, 3, 5, 36, 'n', 'o', 'n', 'e'))); err == nil {
		t.Error("settings without a work block decode")
	}
}

// TestHoldersBlock: the holders of connection sessions go in tag 4, by
// session index, written only when a session names one; a block that
// names no session, an index out of order or past the sessions, or an
// empty holder is refused.
func TestHoldersBlock(t *testing.T) {
	s := richState()
	s.Sessions = append(s.Sessions, presence.Session{ID: "laptop", Kind: presence.ConnectionSession, RefreshedAt: t0, ExpiresAt: t0.Add(time.Hour), Holder: "n1.5f0c"})
	enc := AppendState(nil, &s)
	if enc[0] != format2 {
		t.Fatalf("format %d, want 2", enc[0])
	}
	if got := roundTrip(t, s); !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, s))
	}
	w := richWorkState()
	w.Work.MaxShared = "approximate"
	w.Sessions[0].Holder = "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f11" // encoded as a GUID: validation must take it too
	if got := roundTrip(t, w); !reflect.DeepEqual(got, w) {
		t.Fatalf("with the work blocks:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, w))
	}
	plain := richState() // two sessions
	body := AppendState(nil, &plain)
	body[0] = format2
	for _, tc := range []struct {
		name  string
		block []byte
		ok    bool
	}{
		{"the second session", []byte{4, 4, 1, 1, 33, 'h'}, true},
		{"both", []byte{4, 7, 2, 0, 33, 'h', 1, 33, 'h'}, true},
		{"none", []byte{4, 1, 0}, false},
		{"past the sessions", []byte{4, 4, 1, 2, 33, 'h'}, false},
		{"out of order", []byte{4, 7, 2, 1, 33, 'h', 0, 33, 'h'}, false},
		{"twice", []byte{4, 7, 2, 0, 33, 'h', 0, 33, 'h'}, false},
		{"empty holder", []byte{4, 3, 1, 0, 32}, false},
		{"short", []byte{4, 5, 1, 0, 33, 'h'}, false},
	} {
		_, err := DecodeState(string(append(slices.Clone(body), tc.block...)))
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
