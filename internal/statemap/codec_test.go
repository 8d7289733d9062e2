package statemap

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	presence "github.com/presenced/presenced"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 123456789, time.UTC)

func mustJSON(t testing.TB, s presence.State) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	return string(b)
}

// richState sets every field.
func richState() presence.State {
	msg := "away until Monday"
	return presence.State{
		Sessions: []presence.Session{
			{ID: "22553876-f5ab-4529-bffb-cfe50aa89f87", Pair: presence.Pair{Availability: "Busy", Activity: "InACall"},
				RefreshedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)},
			{ID: "client-1", Kind: presence.ClientSession, Pair: presence.Pair{Availability: "Available", Activity: "OutOfOffice"},
				RefreshedAt: t0.Add(-time.Hour)},
		},
		Preferred: &presence.Preferred{Pair: presence.Pair{Availability: "DoNotDisturb", Activity: "Presenting"}, ExpiresAt: t0.Add(24 * time.Hour)},
		Status: &presence.StatusMessage{Content: "<p>status ☕</p>", ContentType: "html", PublishedAt: t0,
			Expiry: &presence.Expiry{DateTime: "2025-03-15T08:00:00.0000000", TimeZone: "Pacific Standard Time", At: t0.Add(24 * time.Hour)}},
		OOF:              presence.OutOfOfficeSettings{IsOutOfOffice: true, Message: &msg},
		CalendarBusy:     true,
		PresenceDisabled: true,
		Seq:              1 << 40,
		SeqAt:            t0,
		Due:              t0.Add(5 * time.Minute),
		Outbox: []presence.Notice{
			{Seq: 7, At: t0, Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}},
			{Seq: 8, At: t0.Add(time.Second), Pair: presence.Pair{Availability: "NotAWord", Activity: ""}},
		},
	}
}

// roundTrip encodes s and decodes it both ways, checking they agree.
func roundTrip(t *testing.T, s presence.State) presence.State {
	t.Helper()
	enc := AppendState(nil, &s)
	got, err := DecodeState(string(enc))
	if err != nil {
		t.Fatalf("decode of %x: %v", enc, err)
	}
	var in interner
	var got2 presence.State
	due, err := decodeState(string(enc), &in, &got2)
	if err != nil {
		t.Fatalf("decode with interning: %v", err)
	}
	if !reflect.DeepEqual(got, got2) {
		t.Fatalf("interning changed the state:\n%+v\n%+v", got, got2)
	}
	if vdue, err := decodeState(string(enc), nil, nil); err != nil || !vdue.Equal(due) || !due.Equal(s.Due) {
		t.Fatalf("validation: due %v, %v; decoded due %v; want %v", vdue, err, due, s.Due)
	}
	return got
}

func TestCodecRoundTrip(t *testing.T) {
	guid := "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f11"
	far := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	for _, tc := range []struct {
		name string
		s    presence.State
	}{
		{"Zero", presence.State{}},
		{"Rich", richState()},
		{"OneSessionPreferred", presence.State{
			Sessions:  []presence.Session{{ID: guid, Pair: presence.Pair{Availability: "Away", Activity: "Away"}, RefreshedAt: t0, ExpiresAt: t0.Add(time.Hour)}},
			Preferred: &presence.Preferred{Pair: presence.Pair{Availability: "Available", Activity: "Available"}, ExpiresAt: t0.Add(7 * 24 * time.Hour)},
			Seq:       2, SeqAt: t0, Due: t0.Add(time.Hour),
		}},
		{"EmptyStrings", presence.State{
			Sessions: []presence.Session{{}},
			Status:   &presence.StatusMessage{Expiry: &presence.Expiry{}},
			OOF:      presence.OutOfOfficeSettings{Message: new(string)},
		}},
		{"ExtremeTimes", presence.State{
			SeqAt: far, // escaped: past int64 nanoseconds
			Due:   time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
			Sessions: []presence.Session{
				{ID: "A", RefreshedAt: time.Unix(0, 0).UTC(), ExpiresAt: time.Unix(0, math.MaxInt64).UTC()},
				{ID: "B", RefreshedAt: time.Unix(0, math.MinInt64).UTC(), ExpiresAt: time.Unix(-1, 0).UTC()},
				{ID: "C", RefreshedAt: time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC), ExpiresAt: far},
			},
			Outbox: []presence.Notice{{Seq: math.MaxUint64, At: time.Date(1600, 1, 1, 0, 0, 0, 5, time.UTC)}},
		}},
		{"NotGUIDs", presence.State{Sessions: []presence.Session{
			{ID: strings.ToUpper(guid)},
			{ID: "{" + guid + "}"},
			{ID: guid[:35] + "g"},
			{ID: strings.Replace(guid, "-", "_", 1)},
			{ID: strings.Repeat("x", 300)},
		}}},
		{"Kinds", presence.State{Sessions: []presence.Session{{ID: "a", Kind: 255}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, tc.s)
			if a, b := mustJSON(t, got), mustJSON(t, tc.s); a != b {
				t.Fatalf("round trip:\n got %s\nwant %s", a, b)
			}
			if !reflect.DeepEqual(got, tc.s) {
				t.Fatalf("round trip not deeply equal:\n got %#v\nwant %#v", got, tc.s)
			}
		})
	}
}

// TestCodecTimesAreInstants checks that a time in another location, or
// with a monotonic reading, reads back as the same instant in UTC.
func TestCodecTimesAreInstants(t *testing.T) {
	zone := time.FixedZone("X", -7*3600)
	now := time.Now()
	s := presence.State{SeqAt: t0.In(zone), Due: now}
	got := roundTrip(t, s)
	if got.SeqAt != t0 || got.SeqAt.Location() != time.UTC {
		t.Errorf("SeqAt = %v, want %v", got.SeqAt, t0)
	}
	if got.Due != now.UTC().Round(0) {
		t.Errorf("Due = %v, want %v", got.Due, now.UTC())
	}
}

// fill sets every field reachable from v to a non-zero value, so that a
// field the codec does not know comes back zero and fails the comparison.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(t0.Add(time.Duration(*n) * time.Millisecond)))
			return
		}
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.String:
		v.SetString(fmt.Sprint("s", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(uint64(*n))
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		v.SetInt(int64(*n))
	default:
		panic(fmt.Sprintf("fill: add %s to fill and to the codec", v.Type()))
	}
}

// TestCodecCoversEveryField fails when presence.State gains a field that
// AppendState does not write: add it to the codec (as a new format).
func TestCodecCoversEveryField(t *testing.T) {
	var s presence.State
	n := 0
	fill(reflect.ValueOf(&s).Elem(), &n)
	got := roundTrip(t, s)
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("a field does not survive the encoding:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, s))
	}
}

func TestVocabulary(t *testing.T) {
	for i, w := range vocabulary {
		if c, ok := vocabCode(w); !ok || int(c) != i+1 {
			t.Errorf("vocabCode(%q) = %d, %v; want %d", w, c, ok, i+1)
		}
	}
	if len(vocabulary) >= strInline {
		t.Fatalf("the vocabulary has %d words; codes from %d are lengths", len(vocabulary), strInline)
	}
	words := append(presence.Availabilities(), presence.Activities()...)
	words = append(words, "text")
	for _, w := range words {
		if _, ok := vocabCode(w); !ok {
			t.Errorf("%q is not in the vocabulary", w)
		}
	}
	if _, ok := vocabCode("available"); ok {
		t.Error("vocabCode is not case-sensitive")
	}
}

func TestGUID(t *testing.T) {
	for _, s := range []string{"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f11"} {
		g, ok := parseGUID(s)
		if !ok {
			t.Fatalf("parseGUID(%q) failed", s)
		}
		var out [36]byte
		formatGUID(&out, g[:])
		if string(out[:]) != s {
			t.Errorf("format(parse(%q)) = %q", s, out)
		}
	}
	for _, s := range []string{"", "0B0E8C39-7D0A-4B36-9B3F-2A3A1C9E0F11", "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f1", "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f1z", "0b0e8c397d0a-4b36-9b3f-2a3a1c9e0f11-"} {
		if _, ok := parseGUID(s); ok {
			t.Errorf("parseGUID(%q) succeeded", s)
		}
	}
}

// TestEncodedSize checks the size the package docs quote for a typical
// state: one application session and a preferred presence.
func TestEncodedSize(t *testing.T) {
	now := t0
	s := presence.State{
		Sessions: []presence.Session{{ID: "22553876-f5ab-4529-bffb-cfe50aa89f87", Pair: presence.Pair{Availability: "Busy", Activity: "InACall"},
			RefreshedAt: now, ExpiresAt: now.Add(5 * time.Minute)}},
		Preferred: &presence.Preferred{Pair: presence.Pair{Availability: "Away", Activity: "Away"}, ExpiresAt: now.Add(20*time.Millisecond + 7*24*time.Hour)},
		Seq:       2, SeqAt: now.Add(20 * time.Millisecond), Due: now.Add(5 * time.Minute),
	}
	enc := AppendState(nil, &s)
	js, _ := json.Marshal(s)
	t.Logf("%d bytes (JSON: %d)", len(enc), len(js))
	if len(enc) > 64 {
		t.Errorf("a typical state takes %d bytes, more than 64", len(enc))
	}
}

// TestEncodingIsStable pins the bytes of format 1: data directories hold
// them, so a change to the encoder that still round-trips (a reordered
// vocabulary, another varint, a new time base) must fail here.
func TestEncodingIsStable(t *testing.T) {
	const want = "01ff808080808020acbc99abddcdd0ac3082e0a596bb1102000022553876f5ab4529" +
		"bffbcfe50aa89f87050b0282e0a596bb110128636c69656e742d3101118180c58bc6d1" +
		"0100070e8280f89492a527313c703e73746174757320e298953c2f703e15023b323032" +
		"352d30332d31355430383a30303a30302e30303030303030355061636966696320537461" +
		"6e646172642054696d658280f89492a527316177617920756e74696c204d6f6e646179" +
		"020702050b0882a8d6b907284e6f7441576f726420"
	s := richState()
	if got := hex.EncodeToString(AppendState(nil, &s)); got != want {
		t.Errorf("richState encodes as\n%s\nwant\n%s", got, want)
	}
	enc, err := hex.DecodeString(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(string(enc))
	if err != nil {
		t.Fatalf("the pinned encoding does not decode: %v", err)
	}
	if g, w := mustJSON(t, got), mustJSON(t, s); g != w {
		t.Errorf("the pinned encoding decodes as\n%s\nwant\n%s", g, w)
	}
}

func TestDecodeRejects(t *testing.T) {
	s := richState()
	enc := string(AppendState(nil, &s))
	for i := range len(enc) {
		if _, err := DecodeState(enc[:i]); err == nil {
			t.Errorf("a prefix of %d of %d bytes decodes", i, len(enc))
		}
	}
	for _, bad := range []string{enc + "\x00", "\x03" + enc[1:], "{}", ""} {
		if _, err := DecodeState(bad); err == nil {
			t.Errorf("%q decodes", bad)
		}
	}
	// Each bad encoding has a good twin that differs only where it is bad:
	// a vocabulary code past the end, an escaped time with too many
	// nanoseconds, an expiry without a status, an empty outbox, a kind
	// past 255.
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, tc := range []struct{ good, bad []byte }{
		{[]byte{format1, 0, 0, 0, 0, 1, 0, byte(len(vocabulary)), 1, 1, 0, 0}, []byte{format1, 0, 0, 0, 0, 1, 0, byte(len(vocabulary) + 1), 1, 1, 0, 0}},
		{cat([]byte{format1, 0, 0, 1, 0}, binary.AppendUvarint(nil, 1e9-1), []byte{0, 0}), cat([]byte{format1, 0, 0, 1, 0}, binary.AppendUvarint(nil, 1e9), []byte{0, 0})},
		{[]byte{format1, flagStatus | flagExpiry, 0, 0, 0, 0, 32, 32, 0, 32, 32, 0}, []byte{format1, flagExpiry, 0, 0, 0, 0, 32, 32, 0, 32, 32, 0}},
		{[]byte{format1, flagOutbox, 0, 0, 0, 0, 1, 0, 0, 1, 1}, []byte{format1, flagOutbox, 0, 0, 0, 0, 0}},
		{[]byte{format1, 0, 0, 0, 0, 1, 0xff, 0x01, 0x20, 1, 1, 0, 0}, []byte{format1, 0, 0, 0, 0, 1, 0x80, 0x02, 0x20, 1, 1, 0, 0}},
		{[]byte{format1, 0, 0, 0, 0, 0}, []byte{format1, 0, 0, 0, 0, 100}},
	} {
		if _, err := DecodeState(string(tc.good)); err != nil {
			t.Errorf("%x does not decode: %v", tc.good, err)
		}
		if _, err := DecodeState(string(tc.bad)); err == nil {
			t.Errorf("%x decodes", tc.bad)
		}
	}
}

func TestKeyCodec(t *testing.T) {
	in := &interner{}
	for _, k := range []presence.Key{
		{Tenant: "84bd8158-6d4d-4958-8b9f-9d6445542f95", User: "0b0e8c39-7d0a-4b36-9b3f-2a3a1c9e0f11"},
		{Tenant: "t", User: "user-1"},
		{Tenant: "", User: strings.Repeat("u", 200)},
		{Tenant: "Busy", User: "Away"},
	} {
		p := AppendKey(nil, k)
		p = append(p, "rest"...)
		for _, in := range []*interner{nil, in} {
			got, rest, err := decodeKey(p, in)
			if err != nil || got != k || string(rest) != "rest" {
				t.Errorf("decodeKey(AppendKey(%v)) = %v, %q, %v", k, got, rest, err)
			}
		}
		for i := range len(p) - 4 {
			if _, _, err := DecodeKey(p[:i]); err == nil && i < len(appendStr(nil, k.Tenant)) {
				t.Errorf("a prefix of %d bytes of the key %v decodes", i, k)
			}
		}
	}
	a, _, _ := decodeKey(AppendKey(nil, presence.Key{Tenant: "84bd8158-6d4d-4958-8b9f-9d6445542f95", User: "u"}), in)
	b, _, _ := decodeKey(AppendKey(nil, presence.Key{Tenant: "84bd8158-6d4d-4958-8b9f-9d6445542f95", User: "v"}), in)
	if !sameMemory(a.Tenant, b.Tenant) {
		t.Error("the tenant of decoded keys is not shared")
	}
}

// sameMemory reports whether two strings share their bytes.
func sameMemory(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// FuzzDecodeState checks that decoding arbitrary bytes never panics, that
// validation and decoding agree, and that whatever decodes encodes and
// decodes again to the same State.
func FuzzDecodeState(f *testing.F) {
	for _, s := range []presence.State{{}, richState(), richWorkState(), {SeqAt: time.Date(9999, 1, 1, 0, 0, 0, 1, time.UTC)}} {
		f.Add(AppendState(nil, &s))
	}
	f.Add([]byte{format1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in interner
		var s presence.State
		due, err := decodeState(string(data), &in, &s)
		vdue, verr := decodeState(string(data), nil, nil)
		if (err == nil) != (verr == nil) || !due.Equal(vdue) {
			t.Fatalf("decode: %v, %v; validate: %v, %v", due, err, vdue, verr)
		}
		if err != nil {
			return
		}
		enc := AppendState(nil, &s)
		s2, err := DecodeState(string(enc))
		if err != nil {
			t.Fatalf("re-encoding %x does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoding changed the state:\n%#v\n%#v", s, s2)
		}
		if enc2 := AppendState(nil, &s2); !slices.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %x, then %x", enc, enc2)
		}
	})
}

func BenchmarkAppendState(b *testing.B) {
	s := richState()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendState(buf[:0], &s)
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

func BenchmarkDecodeState(b *testing.B) {
	s := richState()
	enc := string(AppendState(nil, &s))
	var in interner
	b.ReportAllocs()
	for b.Loop() {
		var st presence.State
		if _, err := decodeState(enc, &in, &st); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecoderReuses(t *testing.T) {
	rich := presence.State{Seq: 3, SeqAt: time.Unix(100, 0).UTC(), CalendarBusy: true,
		Sessions:  []presence.Session{{ID: "a", Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}}},
		Preferred: &presence.Preferred{Pair: presence.Pair{Availability: "Away", Activity: "Away"}}}
	sparse := presence.State{Seq: 1}
	var d Decoder
	var got presence.State
	for _, want := range []presence.State{rich, sparse, rich} {
		enc := string(AppendState(nil, &want))
		if err := d.Decode(enc, &got); err != nil {
			t.Fatal(err)
		}
		if string(AppendState(nil, &got)) != enc {
			t.Errorf("Decode of %+v gave %+v", want, got)
		}
	}
	if err := d.Decode("\x09", &got); err == nil || !got.IsZero() {
		t.Errorf("Decode of garbage: %v, %+v", err, got)
	}
}
