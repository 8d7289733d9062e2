//go:build tools

package presence

import (
	_ "github.com/MicahParks/keyfunc/v3"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.uber.org/goleak"
	_ "pgregory.net/rapid"
)
