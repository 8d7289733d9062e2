package connect

// raceEnabled is set when the tests run under the race detector.
var raceEnabled bool
