package authtest

import "github.com/golang-jwt/jwt/v5"

// MintWithHeader is Mint with extra header parameters (such as crit),
// written as given next to alg, typ and kid.
func (k *KeySet) MintWithHeader(alg string, header, claims map[string]any) string {
	k.tb.Helper()
	var method jwt.SigningMethod
	var key any
	switch alg {
	case "RS256":
		method, key = jwt.SigningMethodRS256, k.rsa
	case "ES256":
		method, key = jwt.SigningMethodES256, k.ec
	default:
		k.tb.Fatalf("authtest: unsupported alg %q (want RS256 or ES256)", alg)
	}
	t := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	t.Header["kid"] = k.kids[alg]
	for name, v := range header {
		t.Header[name] = v
	}
	s, err := t.SignedString(key)
	if err != nil {
		k.tb.Fatalf("authtest: signing: %v", err)
	}
	return s
}
