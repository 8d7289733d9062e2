package auth

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	presence "github.com/presenced/presenced"
)

// claims are the parts of an Entra ID access token that make a Principal.
type claims struct {
	jwt.RegisteredClaims
	TenantID string     `json:"tid"`
	ObjectID string     `json:"oid"`
	AZP      string     `json:"azp"`
	AppID    string     `json:"appid"`
	Scopes   stringList `json:"scp"`
	Roles    stringList `json:"roles"`
	Acct     any        `json:"acct"`
}

// stringList is a claim holding either one space-separated string (how Entra
// ID writes scp) or an array of strings (how it writes roles, and how some
// other issuers write scp). set records whether the claim was present at all.
type stringList struct {
	set    bool
	values []string
}

// UnmarshalJSON implements json.Unmarshaler.
func (l *stringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*l = stringList{}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = stringList{set: true, values: strings.Fields(s)}
		return nil
	default:
		var v []string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = stringList{set: true, values: v}
		return nil
	}
}

// personal reports whether acct says "personal account" (1, as a number or a
// string).
func (c *claims) personal() bool {
	switch a := c.Acct.(type) {
	case float64:
		return a == 1
	case json.Number:
		return a.String() == "1"
	case string:
		return a == "1"
	}
	return false
}

// principal maps verified claims to a Principal, refusing a token that does
// not name its tenant, application and (when delegated) user by GUID.
func (c *claims) principal() (presence.Principal, error) {
	if !isGUID(c.TenantID) {
		return presence.Principal{}, errTenant
	}
	app := c.AZP
	if app == "" {
		app = c.AppID
	}
	if !isGUID(app) {
		return presence.Principal{}, errAppID
	}
	p := presence.Principal{
		Tenant:    strings.ToLower(c.TenantID),
		AppID:     strings.ToLower(app),
		Delegated: c.Scopes.set,
		Scopes:    clip(c.Scopes.values),
		Roles:     clip(c.Roles.values),
	}
	if p.Delegated {
		if !isGUID(c.ObjectID) {
			return presence.Principal{}, errObjectID
		}
		p.User = strings.ToLower(c.ObjectID)
	}
	p.Personal = p.Tenant == presence.ConsumerTenant || c.personal()
	if c.ExpiresAt != nil {
		p.ExpiresAt = c.ExpiresAt.Unix()
	}
	return p, nil
}

// clip returns s with its capacity cut to its length, so that a caller who
// appends to a cached Principal's slices cannot write into the cache.
func clip(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s[:len(s):len(s)]
}

// isGUID reports whether s is a GUID in its 8-4-4-4-12 hexadecimal form, in
// either case.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// compact reports whether raw is a JWS in compact serialization: three
// base64url segments, the first two not empty (the third is empty for
// alg "none", which the parser then refuses with its own error).
func compact(raw string) bool {
	dots := 0
	segment := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '.':
			if segment == 0 {
				return false
			}
			dots++
			if dots > 2 {
				return false
			}
			segment = 0
			continue
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		segment++
	}
	return dots == 2
}
