package presence

import "strings"

// ConsumerTenant is the tenant id of personal Microsoft accounts. No presence
// endpoint serves a principal from it.
const ConsumerTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// Principal is the verified caller of a request: who it is, in which tenant,
// for which application, and with which delegated scopes or application roles.
// An auth implementation builds it from a bearer token; the domain decides
// what it may do.
type Principal struct {
	// Tenant is the caller's tenant id (the token's tid), lower case.
	Tenant string
	// User is the signed-in user's object id (oid) of a delegated token,
	// lower case; empty for an application token.
	User string
	// AppID is the calling application's client id (azp or appid), lower case.
	AppID string
	// Delegated reports whether the token acts for a signed-in user (scp)
	// rather than for the application itself (roles).
	Delegated bool
	// Scopes are the delegated scopes of the token (scp).
	Scopes []string
	// Roles are the application roles of the token (roles).
	Roles []string
	// Personal reports a personal Microsoft account, which presence refuses.
	Personal bool
	// ExpiresAt is when the token stops being valid, as Unix seconds.
	ExpiresAt int64
}

// The presence permissions, as Graph names them.
const (
	ScopePresenceRead          = "Presence.Read"
	ScopePresenceReadAll       = "Presence.Read.All"
	ScopePresenceReadWrite     = "Presence.ReadWrite"
	ScopePresenceReadWriteAll  = "Presence.ReadWrite.All"
	messageOtherUserWrite      = "Cannot set the presence of another user."
	messageMeNeedsDelegated    = "/me request is only valid with delegated authentication flow."
	messagePersonalNotAllowed  = "Personal Microsoft accounts are not supported for presence."
	messageInsufficientPrivile = "Insufficient privileges to complete the operation."
)

// HasScope reports whether a delegated principal holds any of the scopes.
func (p Principal) HasScope(scopes ...string) bool {
	return p.Delegated && containsFold(p.Scopes, scopes)
}

// HasRole reports whether an application principal holds any of the roles.
func (p Principal) HasRole(roles ...string) bool {
	return !p.Delegated && containsFold(p.Roles, roles)
}

func containsFold(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if strings.EqualFold(h, w) {
				return true
			}
		}
	}
	return false
}

// Me resolves the /me alias: the signed-in user of a delegated token. An
// application token gets Graph's 400.
func (p Principal) Me() (string, error) {
	if !p.Delegated {
		return "", Errorf(CodeBadRequest, messageMeNeedsDelegated)
	}
	return p.User, nil
}

// CanRead decides whether the principal may read the presence of user.
func (p Principal) CanRead(user string) error {
	if p.Personal {
		return Errorf(CodeForbidden, messagePersonalNotAllowed)
	}
	if p.Delegated {
		if p.HasScope(ScopePresenceReadAll) {
			return nil
		}
		if p.User == user && p.HasScope(ScopePresenceRead, ScopePresenceReadWrite) {
			return nil
		}
		return Errorf(CodeForbidden, messageInsufficientPrivile)
	}
	if p.HasRole(ScopePresenceReadAll, ScopePresenceReadWriteAll) {
		return nil
	}
	return Errorf(CodeForbidden, messageInsufficientPrivile)
}

// CanReadMany decides whether the principal may read many users at once
// (getPresencesByUserId and the filtered collection), which always needs the
// ".All" permissions.
func (p Principal) CanReadMany() error {
	if p.Personal {
		return Errorf(CodeForbidden, messagePersonalNotAllowed)
	}
	if p.HasScope(ScopePresenceReadAll) || p.HasRole(ScopePresenceReadAll, ScopePresenceReadWriteAll) {
		return nil
	}
	return Errorf(CodeForbidden, messageInsufficientPrivile)
}

// CanReadManyOnBeta is CanReadMany for getPresencesByUserId on beta, whose
// permissions list only Presence.Read.All for applications: an application
// holding Presence.ReadWrite.All alone is refused there.
func (p Principal) CanReadManyOnBeta() error {
	if !p.Delegated && !p.Personal && !p.HasRole(ScopePresenceReadAll) {
		return Errorf(CodeForbidden, messageInsufficientPrivile)
	}
	return p.CanReadMany()
}

// CanWrite decides whether the principal may change the presence of user:
// delegated callers only their own, with Presence.ReadWrite; applications any
// user of their tenant, with Presence.ReadWrite.All.
func (p Principal) CanWrite(user string) error {
	if p.Personal {
		return Errorf(CodeForbidden, messagePersonalNotAllowed)
	}
	if p.Delegated {
		if !p.HasScope(ScopePresenceReadWrite) {
			return Errorf(CodeForbidden, messageInsufficientPrivile)
		}
		if p.User != user {
			return Errorf(CodeForbidden, messageOtherUserWrite)
		}
		return nil
	}
	if p.HasRole(ScopePresenceReadWriteAll) {
		return nil
	}
	return Errorf(CodeForbidden, messageInsufficientPrivile)
}

// SeesPrivateStatus reports whether the principal reading user sees the
// status message's publishedDateTime and expiryDateTime: the user themself
// and applications do, other delegated readers do not.
func (p Principal) SeesPrivateStatus(user string) bool {
	return !p.Delegated || p.User == user
}
