package presence

// The calendar permissions of the work plan.
const (
	ScopeCalendarsRead      = "Calendars.Read"
	ScopeCalendarsReadWrite = "Calendars.ReadWrite"
)

const (
	messageAppsNotSupported = "Application permissions are not supported for this operation."
	messageOwnWorkPlanOnly  = "The work plan can be read and changed only by its own user."
)

// CanSetLocation decides whether the principal may use the work-location
// actions on user: as CanWrite, except that applications are refused
// unless appsAllowed (v1.0 refuses them, beta allows Presence.ReadWrite.All).
func (p Principal) CanSetLocation(user string, appsAllowed bool) error {
	if p.Personal {
		return Errorf(CodeForbidden, messagePersonalNotAllowed)
	}
	if !p.Delegated && !appsAllowed {
		return Errorf(CodeForbidden, messageAppsNotSupported)
	}
	return p.CanWrite(user)
}

// CanUseWorkPlan decides whether the principal may read (write false) or
// change the work plan of user: a delegated caller's own plan only, with
// Calendars.Read to read and Calendars.ReadWrite to either; applications are
// refused.
func (p Principal) CanUseWorkPlan(user string, write bool) error {
	if p.Personal {
		return Errorf(CodeForbidden, messagePersonalNotAllowed)
	}
	if !p.Delegated {
		return Errorf(CodeForbidden, messageAppsNotSupported)
	}
	ok := p.HasScope(ScopeCalendarsReadWrite) || !write && p.HasScope(ScopeCalendarsRead)
	if !ok {
		return Errorf(CodeForbidden, messageInsufficientPrivile)
	}
	if p.User != user {
		return Errorf(CodeForbidden, messageOwnWorkPlanOnly)
	}
	return nil
}
