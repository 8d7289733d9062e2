//go:build race

package connect

func init() { raceEnabled = true }
