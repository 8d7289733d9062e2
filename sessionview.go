package presence

import "time"

// EffectiveAt returns the session's pair at now: the pair as requested,
// after the idle fade of an Available application session.
func (se *Session) EffectiveAt(now time.Time) Pair { return se.effective(now) }

// NextFadeAt returns the next instant after now at which the session's
// effective pair fades (Available to AvailableInactive, then to Away), and
// false when it will not fade again. Client sessions, and connection
// sessions whose person is active, never fade.
func (se *Session) NextFadeAt(now time.Time) (time.Time, bool) {
	if !se.Kind.fades() || se.Pair != (Pair{Available, Available}) {
		return time.Time{}, false
	}
	for _, t := range []time.Time{se.RefreshedAt.Add(IdleTimeout), se.RefreshedAt.Add(2 * IdleTimeout)} {
		if t.After(now) && t.Before(se.ExpiresAt) {
			return t, true
		}
	}
	return time.Time{}, false
}
