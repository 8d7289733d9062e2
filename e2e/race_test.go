//go:build race

package e2e

// With the race detector on, the server under test is built with it too.
func init() { raceEnabled = true }
