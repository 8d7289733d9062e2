package presence

import "strings"

// The availability values presenced produces or accepts.
const (
	Available       = "Available"
	AvailableIdle   = "AvailableIdle"
	Away            = "Away"
	BeRightBack     = "BeRightBack"
	Busy            = "Busy"
	BusyIdle        = "BusyIdle"
	DoNotDisturb    = "DoNotDisturb"
	Offline         = "Offline"
	PresenceUnknown = "PresenceUnknown"
)

// The activity values presenced produces or accepts, besides those that share
// a name with an availability.
const (
	AvailableInactive       = "AvailableInactive"
	InACall                 = "InACall"
	InAConferenceCall       = "InAConferenceCall"
	InAMeeting              = "InAMeeting"
	Presenting              = "Presenting"
	Focusing                = "Focusing"
	OffWork                 = "OffWork"
	OutOfOffice             = "OutOfOffice"
	Inactive                = "Inactive"
	UrgentInterruptionsOnly = "UrgentInterruptionsOnly"
)

// Availabilities is every availability value Graph has documented; View
// never returns another.
func Availabilities() []string {
	return []string{Available, AvailableIdle, Away, BeRightBack, Busy, BusyIdle, DoNotDisturb, Offline, PresenceUnknown}
}

// Activities is every activity value Graph has documented; View never
// returns another.
func Activities() []string {
	return []string{Available, Away, BeRightBack, Busy, DoNotDisturb, Offline, OutOfOffice, PresenceUnknown,
		InACall, InAConferenceCall, InAMeeting, Presenting, Inactive, OffWork, UrgentInterruptionsOnly,
		AvailableInactive, Focusing}
}

// SessionPairs are the pairs setPresence accepts.
func SessionPairs() []Pair {
	return []Pair{
		{Available, Available},
		{Busy, InACall},
		{Busy, InAConferenceCall},
		{Away, Away},
		{DoNotDisturb, Presenting},
	}
}

// PreferredPairs are the pairs setUserPreferredPresence accepts.
func PreferredPairs() []Pair {
	return []Pair{
		{Available, Available},
		{Busy, Busy},
		{DoNotDisturb, DoNotDisturb},
		{BeRightBack, BeRightBack},
		{Away, Away},
		{Offline, OffWork},
	}
}

// ClientPairs are the pairs a simulated Teams-client session may show: the
// Teams permutation table plus the setPresence pairs.
func ClientPairs() []Pair {
	return []Pair{
		{Available, Available},
		{Available, OutOfOffice},
		{Busy, Busy},
		{Busy, InACall},
		{Busy, InAConferenceCall},
		{Busy, InAMeeting},
		{DoNotDisturb, DoNotDisturb},
		{DoNotDisturb, Presenting},
		{DoNotDisturb, Focusing},
		{Away, Away},
		{BeRightBack, BeRightBack},
		{Offline, OffWork},
		{PresenceUnknown, PresenceUnknown},
	}
}

// canonicalPair matches availability and activity case-insensitively against
// allowed and returns the canonical pair.
func canonicalPair(availability, activity string, allowed []Pair) (Pair, bool) {
	for _, p := range allowed {
		if strings.EqualFold(p.Availability, availability) && strings.EqualFold(p.Activity, activity) {
			return p, true
		}
	}
	return Pair{}, false
}

// rank orders session availabilities for aggregation: DoNotDisturb > Busy >
// Available > Away > Offline.
func rank(availability string) int {
	switch availability {
	case DoNotDisturb:
		return 4
	case Busy, BusyIdle:
		return 3
	case Available, AvailableIdle:
		return 2
	case Away, BeRightBack:
		return 1
	default:
		return 0
	}
}
