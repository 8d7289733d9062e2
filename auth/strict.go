package auth

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Causes of rejections for tokens that jwt's parser would let through.
var (
	errCrit       = errors.New("the token's crit header names extensions presenced does not understand")
	errTimeClaims = errors.New("a time claim (exp, nbf, iat) is not a JSON number")
)

// messageNotYetValid answers a token whose nbf is still in the future.
const messageNotYetValid = "Lifetime validation failed, the token is not yet valid."

// refuseCrit wraps a Keyfunc so that a token with a crit header is
// refused before its key is looked up: RFC 7515 section 4.1.11 says a
// recipient must reject a JWS naming critical extensions it does not
// understand, and presenced understands none.
func refuseCrit(kf jwt.Keyfunc) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, fmt.Errorf("%w: %v", errCrit, t.Header["crit"])
		}
		return kf(t)
	}
}

// UnmarshalJSON decodes the claims, refusing time claims written as
// strings ("exp": "1767225600"), which jwt's NumericDate would accept:
// RFC 7519 makes them NumericDate, a JSON number.
func (c *claims) UnmarshalJSON(b []byte) error {
	type plain claims
	var times struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &times); err != nil {
		return err
	}
	for _, raw := range []json.RawMessage{times.Exp, times.Nbf, times.Iat} {
		if len(raw) > 0 && string(raw) != "null" && (raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f') {
			return errTimeClaims
		}
	}
	return json.Unmarshal(b, (*plain)(c))
}
