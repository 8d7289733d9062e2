package auth

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"

	presence "github.com/presenced/presenced"
)

// The messages Graph answers a rejected bearer token with.
const (
	messageEmpty      = "Access token is empty."
	messageMalformed  = "CompactToken parsing failed with error code: 80049217"
	messageInvalid    = "Access token validation failure."
	messageAudience   = "Access token validation failure. Invalid audience."
	messageIssuer     = "Access token validation failure. Invalid issuer."
	messageExpiredNbf = "Lifetime validation failed, the token is expired."
)

// TokenError is the error Verify returns for every rejected token: the
// domain error the caller answers with (always code
// presence.CodeInvalidAuthenticationToken and a Graph-like message) and the
// cause, for the server's log only.
//
// errors.As(err, new(*presence.Error)) finds Err, and errors.Is and
// errors.As also reach Cause, because Unwrap returns both.
type TokenError struct {
	// Err is what the client is told.
	Err *presence.Error
	// Cause says why the token was refused; it may be nil.
	Cause error
}

// Error implements the error interface. It includes the cause, so it is
// meant for logs; answer clients with Err.
func (e *TokenError) Error() string {
	if e.Cause == nil {
		return e.Err.Error()
	}
	return e.Err.Error() + " (" + e.Cause.Error() + ")"
}

// Unwrap returns the domain error and, when there is one, the cause.
func (e *TokenError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// tokenError returns a *TokenError with message and cause.
func tokenError(message string, cause error) *TokenError {
	return &TokenError{
		Err:   &presence.Error{Code: presence.CodeInvalidAuthenticationToken, Message: message},
		Cause: cause,
	}
}

// Causes of rejections found by this package rather than by jwt.
var (
	errTooLong         = errors.New("token is longer than the limit")
	errNotCompact      = errors.New("token is not three base64url segments")
	errAudience        = errors.New("no audience of the token is accepted")
	errIssuer          = errors.New("issuer of the token is not accepted")
	errTenant          = errors.New("tid claim is missing or not a GUID")
	errAppID           = errors.New("azp and appid claims are missing or not a GUID")
	errObjectID        = errors.New("oid claim of a delegated token is missing or not a GUID")
	errVerifyAbandoned = errors.New("verification of the token did not finish")
)

// classify turns an error from jwt's parser into a *TokenError with the
// message Graph would use.
func classify(err error) *TokenError {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return tokenError(messageMalformed, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return tokenError(messageExpiredNbf, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return tokenError(messageNotYetValid, err)
	default:
		return tokenError(messageInvalid, err)
	}
}
