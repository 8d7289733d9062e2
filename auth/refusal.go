package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// The log of refused tokens is limited, so a flood of bad tokens cannot
// flood the log: a burst, then one line per interval, each saying how many
// were left out since the last one.
const (
	refusalLogEvery = 100 * time.Millisecond
	refusalLogBurst = 20
)

// The reasons a token is refused, as the log names them.
const (
	ReasonMalformed     = "malformed"
	ReasonSignature     = "signature"
	ReasonUnknownKey    = "unknown key"
	ReasonKeysNotLoaded = "keys not loaded"
	ReasonExpired       = "expired"
	ReasonNotYetValid   = "not yet valid"
	ReasonIssuer        = "issuer"
	ReasonAudience      = "audience"
	ReasonClaims        = "claims"
	ReasonInvalid       = "invalid"
)

// Reason names why a token was refused, from the error Verify returned: one
// of the Reason constants.
func Reason(err error) string {
	switch {
	case errors.Is(err, errKeysNotLoaded):
		return ReasonKeysNotLoaded
	case errors.Is(err, jwkset.ErrKeyNotFound), errors.Is(err, errUnknownKey), errors.Is(err, jwt.ErrTokenUnverifiable):
		// Unverifiable: the key could not be found (keyfunc failed).
		return ReasonUnknownKey
	case errors.Is(err, errNotCompact), errors.Is(err, errTooLong), errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ReasonNotYetValid
	case errors.Is(err, errIssuer):
		return ReasonIssuer
	case errors.Is(err, errAudience):
		return ReasonAudience
	case errors.Is(err, errTenant), errors.Is(err, errAppID), errors.Is(err, errObjectID),
		errors.Is(err, jwt.ErrTokenInvalidClaims), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ReasonClaims
	}
	return ReasonInvalid
}

// errUnknownKey is the cause when a token names a key the verifier does not
// hold (the development key's verifier; keyfunc says jwkset.ErrKeyNotFound).
var errUnknownKey = errors.New("the token's kid names no key the server holds")

// logRefusal logs at info why raw was refused, with the token's kid, alg
// and iss as it claims them (unverified; never the token itself).
func (v *Verifier) logRefusal(ctx context.Context, raw string, err error) {
	if !v.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if !v.logs.Allow() {
		v.suppressed.Add(1)
		return
	}
	kid, alg, iss := peek(raw)
	attrs := []any{"reason", Reason(err), "kid", kid, "alg", alg, "iss", iss, "err", cause(err)}
	if n := v.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "refusals_not_logged", n)
	}
	if v.devKey != "" && Reason(err) == ReasonUnknownKey {
		attrs = append(attrs, "hint", "development auth mode accepts only tokens signed by "+v.devKey+
			"; mint one with presenced token --data <this server's data directory>")
	}
	v.logger.InfoContext(ctx, "auth: token refused", attrs...)
}

// cause is the log's text of why a token was refused: the cause of a
// *TokenError, or err.
func cause(err error) string {
	var te *TokenError
	if errors.As(err, &te) && te.Cause != nil {
		return te.Cause.Error()
	}
	return err.Error()
}

// peek reads the kid and alg of a token's header and the iss of its claims
// without verifying anything, for the log; each is cut to a sane length.
// What cannot be read is empty.
func peek(raw string) (kid, alg, iss string) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", "", ""
	}
	var h struct {
		Kid any `json:"kid"`
		Alg any `json:"alg"`
	}
	var c struct {
		Iss any `json:"iss"`
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err == nil {
		_ = json.Unmarshal(b, &h)
	}
	if len(parts[1]) <= maxTokenLen {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(b, &c)
		}
	}
	return logText(h.Kid), logText(h.Alg), logText(c.Iss)
}

func logText(v any) string {
	s, _ := v.(string)
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
