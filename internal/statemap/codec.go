package statemap

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"

	presence "github.com/presenced/presenced"
)

// The state encoding, format 1. It is both the serving copy the Map keeps
// of every State and what filestore writes to disk, so its bytes must stay
// readable: change it only by adding a format. All integers are varints
// (encoding/binary's uvarint; "zigzag" is its signed varint).
//
//	state   = format flags seq:uvarint seqAt:time due:time
//	          nsessions:uvarint session*
//	          [preferred] [status] [oofMessage] [noutbox:uvarint notice*]
//	format  = byte 1
//	flags   = byte; the optional parts present and the booleans:
//	          1 Preferred, 2 Status, 4 Status.Expiry, 8 OOF.IsOutOfOffice,
//	          16 OOF.Message, 32 CalendarBusy, 64 PresenceDisabled, 128 Outbox
//	session = kind:uvarint id:string pair refreshedAt:time expiresAt:time
//	preferred = pair expiresAt:time
//	status  = content:string contentType:string publishedAt:time
//	          [dateTime:string timeZone:string at:time]   (if flag 4)
//	oofMessage = string
//	notice  = seq:uvarint at:time pair
//	pair    = availability:string activity:string
//
// A string is a uvarint v, then:
//
//	v = 0        16 bytes: a canonical lower-case GUID (8-4-4-4-12 hex)
//	1 <= v < 32  nothing: the word vocabulary[v-1] (codes past its end are
//	             invalid; the vocabulary may only grow, at its end)
//	v >= 32      v-32 bytes, the string itself
//
// A time is a uvarint t, then:
//
//	t = 0   the zero time.Time
//	t = 1   zigzag seconds and uvarint nanoseconds (< 1e9) since the Unix
//	        epoch: an instant whose Unix nanoseconds do not fit an int64
//	t >= 2  zigzag(t-2) is its Unix nanoseconds minus the base: the Unix
//	        nanoseconds of the first time of the state written this way (0
//	        for that first one). Times of one state are close together,
//	        so they take 1-7 bytes, the first one 9.
//
// Times are instants: they decode in UTC without a monotonic reading, as
// the service's clock gives them. A State holding times in another
// location reads back as the same instants in UTC.
//
// Format 2 is format 1 (with format byte 2) followed by an extension
// section: tagged blocks up to the end of the encoding, so that later
// fields need a new tag, never a new format. A state without anything for
// the extension is still written as format 1.
//
//	state2  = format1-body block*
//	block   = tag:uvarint len:uvarint bytes      (len bytes of the tag's content)
//
// There is at least one block; a tag appears at most once, in increasing
// order; a reader skips tags it does not know. Times inside a block share the state's time base. Tags:
//
//	1 work  = wflags:byte [manual:signal] [automatic:signal] [timeZone:string]
//	          nrec:uvarint recurrence* nocc:uvarint occurrence*
//	   wflags = 1 Manual, 2 Automatic, 4 TimeZone
//	   signal = type:string placeId:string until:time
//	   recurrence = id:string start:ptime end:ptime type:string placeId:string
//	          days:byte interval:uvarint firstDayOfWeek:uvarint rangeType:string
//	          startDate:string endDate:string count:uvarint rangeTimeZone:string
//	   occurrence = id:string recurrenceId:string start:ptime end:ptime
//	          startAt:time endAt:time type:string placeId:string
//	          timeOff:byte (0 none, 1 details, 3 details all day) [subject:string]
//	   ptime = dateTime:string timeZone:string
//	2 outbox work = (type:string source:string placeId:string) for each notice
//	          of the outbox, in order; written only when one is not zero
//	3 work settings = maxSharedWorkLocationDetails:string; only after tag 1,
//	          and only when set
//	4 holders = nheld:uvarint (index:uvarint holder:string)*: the sessions
//	          that name a holder, by their index in the sessions (increasing),
//	          and the holder (never empty); written only when one does
const (
	format1 = 1
	format2 = 2
)

// Extension tags of format 2.
const (
	tagWork         = 1
	tagOutboxWork   = 2
	tagWorkSettings = 3
	tagHolders      = 4
)

const (
	flagPreferred = 1 << iota
	flagStatus
	flagExpiry
	flagOutOfOffice
	flagOOFMessage
	flagCalendarBusy
	flagPresenceDisabled
	flagOutbox
)

// String codes.
const (
	strGUID   = 0
	strInline = 32
)

// vocabulary is the words a string may be encoded as by code (1-based):
// availabilities, activities and content types. Never reorder it.
var vocabulary = [...]string{
	"Available", "AvailableIdle", "Away", "BeRightBack", "Busy", "BusyIdle",
	"DoNotDisturb", "Offline", "PresenceUnknown", "AvailableInactive",
	"InACall", "InAConferenceCall", "InAMeeting", "Presenting", "Focusing",
	"OffWork", "OutOfOffice", "Inactive", "UrgentInterruptionsOnly",
	"text", "html",
}

// vocabCode returns the string code of s if it is in the vocabulary.
func vocabCode(s string) (byte, bool) {
	switch s {
	case "Available":
		return 1, true
	case "AvailableIdle":
		return 2, true
	case "Away":
		return 3, true
	case "BeRightBack":
		return 4, true
	case "Busy":
		return 5, true
	case "BusyIdle":
		return 6, true
	case "DoNotDisturb":
		return 7, true
	case "Offline":
		return 8, true
	case "PresenceUnknown":
		return 9, true
	case "AvailableInactive":
		return 10, true
	case "InACall":
		return 11, true
	case "InAConferenceCall":
		return 12, true
	case "InAMeeting":
		return 13, true
	case "Presenting":
		return 14, true
	case "Focusing":
		return 15, true
	case "OffWork":
		return 16, true
	case "OutOfOffice":
		return 17, true
	case "Inactive":
		return 18, true
	case "UrgentInterruptionsOnly":
		return 19, true
	case "text":
		return 20, true
	case "html":
		return 21, true
	}
	return 0, false
}

// unhex maps an ASCII byte to its value as a lower-case hex digit, or 0xff.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// guidDigits are the offsets of the first digit of each of the 16 bytes of
// a canonical GUID.
var guidDigits = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// parseGUID returns the 16 bytes of s if s is a canonical lower-case GUID,
// the form formatGUID gives back exactly.
func parseGUID(s string) (g [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	var bad byte
	for i, o := range guidDigits {
		hi, lo := unhex[s[o]], unhex[s[o+1]]
		bad |= hi | lo
		g[i] = hi<<4 | lo
	}
	return g, bad&0xf0 == 0
}

const hexDigits = "0123456789abcdef"

// formatGUID writes the canonical lower-case form of the 16 bytes g to out.
func formatGUID[B ~string | ~[]byte](out *[36]byte, g B) {
	_ = g[15]
	for i, o := range guidDigits {
		out[o] = hexDigits[g[i]>>4]
		out[o+1] = hexDigits[g[i]&15]
	}
	out[8], out[13], out[18], out[23] = '-', '-', '-', '-'
}

// maxNanoSeconds bounds the Unix seconds of the instants whose Unix
// nanoseconds fit in an int64.
const maxNanoSeconds = math.MaxInt64/int64(time.Second) - 1

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func appendStr(b []byte, s string) []byte {
	if len(s) == 36 {
		if g, ok := parseGUID(s); ok {
			b = append(b, strGUID)
			return append(b, g[:]...)
		}
	}
	if c, ok := vocabCode(s); ok {
		return append(b, c)
	}
	b = binary.AppendUvarint(b, strInline+uint64(len(s)))
	return append(b, s...)
}

func appendPair(b []byte, p presence.Pair) []byte {
	return appendStr(appendStr(b, p.Availability), p.Activity)
}

// timeBase is the base of the times of one state: the Unix nanoseconds of
// its first time written as nanoseconds.
type timeBase struct {
	ns  int64
	set bool
}

func (tb *timeBase) appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	if sec := t.Unix(); sec >= -maxNanoSeconds && sec <= maxNanoSeconds {
		ns := t.UnixNano()
		d := ns - tb.ns
		// The subtraction overflows only if ns and the base differ in
		// sign and d's sign differs from ns's.
		if !((ns^tb.ns) < 0 && (ns^d) < 0) {
			if z := zigzag(d); z <= math.MaxUint64-2 {
				if !tb.set {
					tb.ns, tb.set = ns, true
				}
				return binary.AppendUvarint(b, z+2)
			}
		}
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, zigzag(t.Unix()))
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// AppendState appends the encoding of s (format 1, described above) to
// dst and returns the extended buffer.
func AppendState(dst []byte, s *presence.State) []byte {
	var flags byte
	if s.Preferred != nil {
		flags |= flagPreferred
	}
	if s.Status != nil {
		flags |= flagStatus
		if s.Status.Expiry != nil {
			flags |= flagExpiry
		}
	}
	if s.OOF.IsOutOfOffice {
		flags |= flagOutOfOffice
	}
	if s.OOF.Message != nil {
		flags |= flagOOFMessage
	}
	if s.CalendarBusy {
		flags |= flagCalendarBusy
	}
	if s.PresenceDisabled {
		flags |= flagPresenceDisabled
	}
	if len(s.Outbox) > 0 {
		flags |= flagOutbox
	}
	var tb timeBase
	format := byte(format1)
	outboxWork := hasOutboxWork(s.Outbox)
	held := holders(s.Sessions)
	if s.Work != nil || outboxWork || held > 0 {
		format = format2
	}
	b := append(dst, format, flags)
	b = binary.AppendUvarint(b, s.Seq)
	b = tb.appendTime(b, s.SeqAt)
	b = tb.appendTime(b, s.Due)
	b = binary.AppendUvarint(b, uint64(len(s.Sessions)))
	for i := range s.Sessions {
		se := &s.Sessions[i]
		b = binary.AppendUvarint(b, uint64(se.Kind))
		b = appendStr(b, se.ID)
		b = appendPair(b, se.Pair)
		b = tb.appendTime(b, se.RefreshedAt)
		b = tb.appendTime(b, se.ExpiresAt)
	}
	if p := s.Preferred; p != nil {
		b = appendPair(b, p.Pair)
		b = tb.appendTime(b, p.ExpiresAt)
	}
	if m := s.Status; m != nil {
		b = appendStr(b, m.Content)
		b = appendStr(b, m.ContentType)
		b = tb.appendTime(b, m.PublishedAt)
		if x := m.Expiry; x != nil {
			b = appendStr(b, x.DateTime)
			b = appendStr(b, x.TimeZone)
			b = tb.appendTime(b, x.At)
		}
	}
	if s.OOF.Message != nil {
		b = appendStr(b, *s.OOF.Message)
	}
	if len(s.Outbox) > 0 {
		b = binary.AppendUvarint(b, uint64(len(s.Outbox)))
		for i := range s.Outbox {
			n := &s.Outbox[i]
			b = binary.AppendUvarint(b, n.Seq)
			b = tb.appendTime(b, n.At)
			b = appendPair(b, n.Pair)
		}
	}
	if s.Work != nil {
		b = appendBlock(b, tagWork, func(b []byte) []byte { return tb.appendWork(b, s.Work) })
	}
	if outboxWork {
		b = appendBlock(b, tagOutboxWork, func(b []byte) []byte {
			for i := range s.Outbox {
				w := &s.Outbox[i].Work
				b = appendStr(appendStr(appendStr(b, w.Type), w.Source), w.PlaceID)
			}
			return b
		})
	}
	if s.Work != nil && s.Work.MaxShared != "" {
		b = appendBlock(b, tagWorkSettings, func(b []byte) []byte { return appendStr(b, s.Work.MaxShared) })
	}
	if held > 0 {
		b = appendBlock(b, tagHolders, func(b []byte) []byte {
			b = binary.AppendUvarint(b, uint64(held))
			for i := range s.Sessions {
				if h := s.Sessions[i].Holder; h != "" {
					b = appendStr(binary.AppendUvarint(b, uint64(i)), h)
				}
			}
			return b
		})
	}
	return b
}

// holders counts the sessions that name a holder.
func holders(sessions []presence.Session) int {
	n := 0
	for i := range sessions {
		if sessions[i].Holder != "" {
			n++
		}
	}
	return n
}

func hasOutboxWork(outbox []presence.Notice) bool {
	for i := range outbox {
		if outbox[i].Work != (presence.WorkLocation{}) {
			return true
		}
	}
	return false
}

// appendBlock appends a block of format 2's extension: tag, the length of
// what content appends, then it.
func appendBlock(b []byte, tag uint64, content func([]byte) []byte) []byte {
	b = binary.AppendUvarint(b, tag)
	body := content(nil)
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

func appendPlanTime(b []byte, p presence.PlanTime) []byte {
	return appendStr(appendStr(b, p.DateTime), p.TimeZone)
}

func (tb *timeBase) appendSignal(b []byte, sig *presence.LocationSignal) []byte {
	b = appendStr(b, sig.Type)
	b = appendStr(b, sig.PlaceID)
	return tb.appendTime(b, sig.Until)
}

// appendWork appends the content of the work block (tag 1).
func (tb *timeBase) appendWork(b []byte, w *presence.WorkState) []byte {
	var flags byte
	if w.Manual != nil {
		flags |= 1
	}
	if w.Automatic != nil {
		flags |= 2
	}
	if w.TimeZone != "" {
		flags |= 4
	}
	b = append(b, flags)
	if w.Manual != nil {
		b = tb.appendSignal(b, w.Manual)
	}
	if w.Automatic != nil {
		b = tb.appendSignal(b, w.Automatic)
	}
	if w.TimeZone != "" {
		b = appendStr(b, w.TimeZone)
	}
	b = binary.AppendUvarint(b, uint64(len(w.Recurrences)))
	for i := range w.Recurrences {
		r := &w.Recurrences[i]
		b = appendStr(b, r.ID)
		b = appendPlanTime(b, r.Start)
		b = appendPlanTime(b, r.End)
		b = appendStr(b, r.Type)
		b = appendStr(b, r.PlaceID)
		b = append(b, r.Days)
		b = binary.AppendUvarint(b, zigzag(int64(r.Interval)))
		b = binary.AppendUvarint(b, zigzag(int64(r.FirstDayOfWeek)))
		b = appendStr(b, r.RangeType)
		b = appendStr(b, r.StartDate)
		b = appendStr(b, r.EndDate)
		b = binary.AppendUvarint(b, zigzag(int64(r.Count)))
		b = appendStr(b, r.RangeTimeZone)
	}
	b = binary.AppendUvarint(b, uint64(len(w.Occurrences)))
	for i := range w.Occurrences {
		o := &w.Occurrences[i]
		b = appendStr(b, o.ID)
		b = appendStr(b, o.RecurrenceID)
		b = appendPlanTime(b, o.Start)
		b = appendPlanTime(b, o.End)
		b = tb.appendTime(b, o.StartAt)
		b = tb.appendTime(b, o.EndAt)
		b = appendStr(b, o.Type)
		b = appendStr(b, o.PlaceID)
		switch t := o.TimeOff; {
		case t == nil:
			b = append(b, 0)
		case t.IsAllDay:
			b = append(b, 3)
			b = appendStr(b, t.Subject)
		default:
			b = append(b, 1)
			b = appendStr(b, t.Subject)
		}
	}
	return b
}

// AppendKey appends key as two strings of the encoding above, tenant then
// user.
func AppendKey(dst []byte, key presence.Key) []byte {
	return appendStr(appendStr(dst, key.Tenant), key.User)
}

// Minimum encoded sizes, which bound the counts a valid encoding can hold.
const (
	minSession = 6 // kind, id, two strings of the pair, two times
	minNotice  = 4 // seq, at, pair
)

var errBadEncoding = errors.New("statemap: invalid state encoding")

// decoder reads an encoding. Once it fails it stays failed and returns
// zero values. With build false it only validates: strings and slices are
// not made.
type decoder struct {
	p        string
	i        int
	base     int64
	hasBase  bool
	bad      bool
	build    bool
	in       *interner  // nil: GUID strings are not interned
	notices  int        // the outbox's length, for its extension block
	sessions int        // how many sessions, for the holders block
	guids    *guidCache // nil: none
}

// guidCache remembers the last GUIDs a decoder formatted, by their 16
// bytes: a bulk read decodes hundreds of states whose sessions mostly
// belong to the same few applications, and comparing 16 bytes is much
// cheaper than formatting and interning 36.
type guidCache struct {
	raw  [8]string // the encoded bytes, slices of the encodings read
	str  [8]string
	next int
}

// lookup returns the formatted GUID of raw, if cached.
func (c *guidCache) lookup(raw string) (string, bool) {
	for i := range c.raw {
		if c.raw[i] == raw && raw != "" {
			return c.str[i], true
		}
	}
	return "", false
}

// add caches str as the formatted GUID of raw, replacing the oldest.
func (c *guidCache) add(raw, str string) {
	c.raw[c.next], c.str[c.next] = raw, str
	c.next = (c.next + 1) % len(c.raw)
}

func (d *decoder) fail() { d.bad, d.i = true, len(d.p) }

func (d *decoder) byte() byte {
	if d.i >= len(d.p) {
		d.fail()
		return 0
	}
	c := d.p[d.i]
	d.i++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.i < len(d.p) && d.p[d.i] < 0x80 { // most are one byte; inlined
		c := d.p[d.i]
		d.i++
		return uint64(c)
	}
	return d.uvarintSlow()
}

func (d *decoder) uvarintSlow() uint64 {
	var x uint64
	var s uint
	for k := 0; k < 10; k++ {
		if d.i >= len(d.p) {
			break
		}
		c := d.p[d.i]
		d.i++
		if c < 0x80 {
			if k == 9 && c > 1 {
				break // overflows 64 bits
			}
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	d.fail()
	return 0
}

// count reads a count of items of at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.p)-d.i)/uint64(min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	v := d.uvarint()
	switch {
	case v == strGUID:
		if len(d.p)-d.i < 16 {
			d.fail()
			return ""
		}
		g := d.p[d.i : d.i+16]
		d.i += 16
		if !d.build {
			return ""
		}
		if d.guids != nil {
			if str, ok := d.guids.lookup(g); ok {
				return str
			}
		}
		var buf [36]byte
		formatGUID(&buf, g)
		var str string
		if d.in != nil {
			str = d.in.internBytes(buf[:])
		} else {
			str = string(buf[:])
		}
		if d.guids != nil {
			d.guids.add(g, str)
		}
		return str
	case v < strInline:
		if v > uint64(len(vocabulary)) {
			d.fail()
			return ""
		}
		return vocabulary[v-1]
	}
	n := v - strInline
	if n > uint64(len(d.p)-d.i) {
		d.fail()
		return ""
	}
	s := d.p[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

func (d *decoder) pair() presence.Pair {
	a := d.str()
	return presence.Pair{Availability: a, Activity: d.str()}
}

func (d *decoder) time() time.Time {
	switch t := d.uvarint(); t {
	case 0:
		return time.Time{}
	case 1:
		sec := unzigzag(d.uvarint())
		nsec := d.uvarint()
		if nsec >= uint64(time.Second) {
			d.fail()
		}
		if d.bad {
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	default:
		ns := d.base + unzigzag(t-2)
		if !d.hasBase {
			d.base, d.hasBase = ns, true
		}
		return time.Unix(0, ns).UTC()
	}
}

// decodeState decodes enc into *s, or with s nil only validates it. It
// returns the state's Due either way. On error *s is left zero.
func decodeState(enc string, in *interner, s *presence.State) (due time.Time, err error) {
	return decodeReusing(enc, in, s, nil)
}

// scratch is storage a decoder reuses from one state to the next, so that
// decoding many states one after another allocates nothing once it has
// grown: the State decoded last points into it.
type scratch struct {
	sessions  []presence.Session
	outbox    []presence.Notice
	preferred presence.Preferred
	status    presence.StatusMessage
	expiry    presence.Expiry
	oofMsg    string
	guids     guidCache
}

// decodeReusing is decodeState that, with r not nil, builds *s in r's
// storage instead of allocating: *s is then valid until r is used again.
func decodeReusing(enc string, in *interner, s *presence.State, r *scratch) (due time.Time, err error) {
	d := decoder{p: enc, in: in, build: s != nil}
	// Where the slices and pointed-to parts of the state go: r's storage,
	// or (nil) allocations of their own.
	var slots struct {
		sessions  *[]presence.Session
		outbox    *[]presence.Notice
		preferred *presence.Preferred
		status    *presence.StatusMessage
		expiry    *presence.Expiry
		oofMsg    *string
	}
	if r != nil {
		d.guids = &r.guids
		slots.sessions, slots.outbox = &r.sessions, &r.outbox
		slots.preferred, slots.status, slots.expiry, slots.oofMsg = &r.preferred, &r.status, &r.expiry, &r.oofMsg
	}
	var scratch presence.State
	st := s
	if st == nil {
		st = &scratch
	} else {
		*st = presence.State{}
	}
	format := d.byte()
	if format != format1 && format != format2 {
		return time.Time{}, errBadEncoding
	}
	flags := d.byte()
	st.Seq = d.uvarint()
	st.SeqAt = d.time()
	st.Due = d.time()
	if n := d.count(minSession); n > 0 {
		d.sessions = n
		var one presence.Session
		if d.build {
			st.Sessions = elems(slots.sessions, n)
		}
		for i := range n {
			se := &one
			if d.build {
				se = &st.Sessions[i]
			}
			kind := d.uvarint()
			if kind > math.MaxUint8 {
				d.fail()
			}
			se.Kind = presence.SessionKind(kind)
			se.ID = d.str()
			se.Pair = d.pair()
			se.RefreshedAt = d.time()
			se.ExpiresAt = d.time()
		}
	}
	if flags&flagPreferred != 0 {
		p := presence.Preferred{Pair: d.pair(), ExpiresAt: d.time()}
		if d.build {
			st.Preferred = keep(p, slots.preferred)
		}
	}
	if flags&flagStatus != 0 {
		m := presence.StatusMessage{Content: d.str(), ContentType: d.str(), PublishedAt: d.time()}
		if flags&flagExpiry != 0 {
			x := presence.Expiry{DateTime: d.str(), TimeZone: d.str(), At: d.time()}
			if d.build {
				m.Expiry = keep(x, slots.expiry)
			}
		}
		if d.build {
			st.Status = keep(m, slots.status)
		}
	} else if flags&flagExpiry != 0 {
		d.fail()
	}
	st.OOF.IsOutOfOffice = flags&flagOutOfOffice != 0
	if flags&flagOOFMessage != 0 {
		msg := d.str()
		if d.build {
			st.OOF.Message = keep(msg, slots.oofMsg)
		}
	}
	st.CalendarBusy = flags&flagCalendarBusy != 0
	st.PresenceDisabled = flags&flagPresenceDisabled != 0
	if flags&flagOutbox != 0 {
		n := d.count(minNotice)
		if n == 0 {
			d.fail()
		}
		d.notices = n
		var one presence.Notice
		if d.build && n > 0 {
			st.Outbox = elems(slots.outbox, n)
		}
		for i := range n {
			nt := &one
			if d.build {
				nt = &st.Outbox[i]
			}
			nt.Seq = d.uvarint()
			nt.At = d.time()
			nt.Pair = d.pair()
		}
	}
	if format == format2 {
		d.extension(st)
	}
	if d.bad || d.i != len(d.p) {
		*st = presence.State{}
		return time.Time{}, errBadEncoding
	}
	return st.Due, nil
}

// elems returns a slice of n elements for the decoder to fill: slot's,
// grown as needed, when the decoder reuses storage, else a new one.
func elems[T any](slot *[]T, n int) []T {
	if slot == nil {
		return make([]T, n)
	}
	*slot = slices.Grow((*slot)[:0], n)[:n]
	return *slot
}

// keep returns a pointer to a copy of v: slot, when the decoder reuses
// storage, else a new allocation.
func keep[T any](v T, slot *T) *T {
	if slot == nil {
		slot = new(T)
	}
	*slot = v
	return slot
}

// DecodeState decodes an encoding made by AppendState. The strings of the
// State it returns may share memory with enc.
func DecodeState(enc string) (presence.State, error) {
	var s presence.State
	_, err := decodeState(enc, nil, &s)
	return s, err
}

// decodeKey reads a key written by AppendKey from the start of p and
// returns it and the rest of p. The tenant is interned in in; the user is
// a string of its own.
func decodeKey(p []byte, in *interner) (presence.Key, []byte, error) {
	var key presence.Key
	var ok bool
	if key.Tenant, p, ok = readKeyString(p, in); !ok {
		return key, p, errors.New("statemap: invalid tenant")
	}
	if key.User, p, ok = readKeyString(p, nil); !ok {
		return key, p, errors.New("statemap: invalid user")
	}
	return key, p, nil
}

func readKeyString(p []byte, in *interner) (string, []byte, bool) {
	v, k := binary.Uvarint(p)
	if k <= 0 {
		return "", p, false
	}
	p = p[k:]
	switch {
	case v == strGUID:
		if len(p) < 16 {
			return "", p, false
		}
		var buf [36]byte
		formatGUID(&buf, p[:16])
		if in != nil {
			return in.internBytes(buf[:]), p[16:], true
		}
		return string(buf[:]), p[16:], true
	case v < strInline:
		if v > uint64(len(vocabulary)) {
			return "", p, false
		}
		return vocabulary[v-1], p, true
	}
	n := v - strInline
	if n > uint64(len(p)) {
		return "", p, false
	}
	if in != nil {
		return in.internBytes(p[:n]), p[n:], true
	}
	return string(p[:n]), p[n:], true
}

// DecodeKey reads a key written by AppendKey from the start of p and
// returns it and the rest of p. Both strings are of their own.
func DecodeKey(p []byte) (presence.Key, []byte, error) {
	return decodeKey(p, nil)
}

// Decoder decodes encodings made by AppendState one after another into
// storage it reuses, so that decoding many states allocates nothing once
// it has grown. Its zero value is ready for use; it is not safe for
// concurrent use.
type Decoder struct {
	r scratch
}

// Decode decodes enc into *s, built in d's storage: *s (and everything it
// points to) is valid only until the next call of Decode. The strings of
// *s may share memory with enc.
func (d *Decoder) Decode(enc string, s *presence.State) error {
	_, err := decodeReusing(enc, nil, s, &d.r)
	return err
}

// extension reads the blocks of format 2 into st.
func (d *decoder) extension(st *presence.State) {
	if d.i >= len(d.p) {
		d.fail() // format 2 is written only with at least one block
		return
	}
	var last uint64
	hadWork := false
	for d.i < len(d.p) && !d.bad {
		tag := d.uvarint()
		n := d.uvarint()
		if d.bad || tag <= last || n > uint64(len(d.p)-d.i) {
			d.fail()
			return
		}
		last = tag
		end := d.i + int(n)
		if tag == tagWorkSettings {
			v := d.str()
			if d.i != end || !hadWork || v == "" {
				d.fail() // settings come with the work block, and are never empty
				return
			}
			if d.build {
				st.Work.MaxShared = v
			}
			continue
		}
		if tag == tagHolders {
			d.holders(st, end)
			continue
		}
		if tag != tagWork && tag != tagOutboxWork {
			d.i = end // a later tag: not ours to read
			continue
		}
		whole := d.p
		d.p = whole[:end]
		var w *presence.WorkState
		if tag == tagWork {
			w = d.work()
		} else {
			for i := range d.notices {
				t, src := d.str(), d.str()
				p := d.str()
				if d.build {
					st.Outbox[i].Work = presence.WorkLocation{Type: t, Source: src, PlaceID: p}
				}
			}
		}
		if d.i != end {
			d.fail()
		}
		d.p = whole
		if d.bad {
			return
		}
		d.i = end
		if w != nil {
			hadWork = true
			if d.build {
				st.Work = w
			}
		}
	}
}

// holders reads the content of the holders block (tag 4), which ends at
// end.
func (d *decoder) holders(st *presence.State, end int) {
	whole := d.p
	d.p = whole[:end]
	n := d.count(2) // an index and a holder of one byte at least
	if n == 0 {
		d.fail()
	}
	next := 0
	for range n {
		i := d.uvarint()
		// The empty string is the one code a holder may not have (str
		// gives "" for every GUID when it only validates).
		empty := d.i < len(d.p) && d.p[d.i] == strInline
		h := d.str()
		if d.bad || i < uint64(next) || i >= uint64(d.sessions) || empty {
			d.fail()
			break
		}
		next = int(i) + 1
		if d.build {
			st.Sessions[i].Holder = h
		}
	}
	if d.i != end {
		d.fail()
	}
	d.p = whole
	if !d.bad {
		d.i = end
	}
}

func (d *decoder) planTime() presence.PlanTime {
	dt := d.str()
	return presence.PlanTime{DateTime: dt, TimeZone: d.str()}
}

func (d *decoder) signal() *presence.LocationSignal {
	t := d.str()
	p := d.str()
	return &presence.LocationSignal{Type: t, PlaceID: p, Until: d.time()}
}

func (d *decoder) int() int {
	v := unzigzag(d.uvarint())
	if v > math.MaxInt32 || v < math.MinInt32 {
		d.fail()
		return 0
	}
	return int(v)
}

// Minimum encoded sizes of the work block's items.
const (
	minRecurrence = 16
	minOccurrence = 13
)

// work reads the content of the work block.
func (d *decoder) work() *presence.WorkState {
	w := &presence.WorkState{}
	flags := d.byte()
	if flags&^7 != 0 {
		d.fail()
	}
	if flags&1 != 0 {
		w.Manual = d.signal()
	}
	if flags&2 != 0 {
		w.Automatic = d.signal()
	}
	if flags&4 != 0 {
		w.TimeZone = d.str()
	}
	if n := d.count(minRecurrence); n > 0 {
		w.Recurrences = make([]presence.PlanRecurrence, n)
		for i := range n {
			r := &w.Recurrences[i]
			r.ID = d.str()
			r.Start = d.planTime()
			r.End = d.planTime()
			r.Type = d.str()
			r.PlaceID = d.str()
			r.Days = d.byte()
			r.Interval = d.int()
			r.FirstDayOfWeek = time.Weekday(d.int())
			r.RangeType = d.str()
			r.StartDate = d.str()
			r.EndDate = d.str()
			r.Count = d.int()
			r.RangeTimeZone = d.str()
		}
	}
	if n := d.count(minOccurrence); n > 0 {
		w.Occurrences = make([]presence.PlanOccurrence, n)
		for i := range n {
			o := &w.Occurrences[i]
			o.ID = d.str()
			o.RecurrenceID = d.str()
			o.Start = d.planTime()
			o.End = d.planTime()
			o.StartAt = d.time()
			o.EndAt = d.time()
			o.Type = d.str()
			o.PlaceID = d.str()
			switch d.byte() {
			case 0:
			case 1:
				o.TimeOff = &presence.TimeOffDetails{Subject: d.str()}
			case 3:
				o.TimeOff = &presence.TimeOffDetails{Subject: d.str(), IsAllDay: true}
			default:
				d.fail()
			}
		}
	}
	return w
}
