package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// scenario is one measurement, selected by name with --scenario. Adding one
// is adding an entry to scenarios: a run function that gets its target
// (b.loadTarget, or b.spawn for a server of its own), does its work, and
// records what it measured in b.report.
type scenario struct {
	name  string
	about string
	// optIn scenarios are heavy: they run only when named, never by default.
	optIn bool
	// needs names scenarios whose figures this one is judged against; they
	// run first when not selected.
	needs []string
	run   func(ctx context.Context, b *bench) error
}

// The operations of the load scenarios, by their Graph names.
const (
	opSet       = "setPresence"
	opGet       = "getPresence"
	opBulk      = "getPresencesByUserId"
	opPreferred = "setUserPreferredPresence"
)

// scenarios returns every scenario, in the order they run.
func scenarios() []scenario {
	return []scenario{
		{name: "set", about: "setPresence over many users and apps (durable writes), against a baseline POST",
			run: loadScenario("set", true, weighted{opSet, 1})},
		{name: "get", about: "GET presence, against a baseline GET",
			run: loadScenario("get", true, weighted{opGet, 1})},
		{name: "bulk", about: "getPresencesByUserId with 650 ids, judged against get", needs: []string{"get"},
			run: loadScenario("bulk", false, weighted{opBulk, 1})},
		{name: "mix", about: "60% GET, 25% setPresence, 10% getPresencesByUserId(650), 5% setUserPreferredPresence",
			run: loadScenario("mix", false, weighted{opGet, 60}, weighted{opSet, 25}, weighted{opBulk, 10}, weighted{opPreferred, 5})},
		{name: "scale", optIn: true, about: "populate --users users with a session and a preferred presence; server RSS; restart to /readyz",
			run: runScale},
		{name: "timers", optIn: true, about: "--users sessions expiring in PT5M (takes 5+ minutes); how late the scheduler fires them",
			run: runTimers},
		{name: "webhook", optIn: true, about: "change-notification latency: setPresence at --rate changes/s to subscribed users, a local receiver timestamps each notification",
			run: runWebhook},
		{name: "connections", optIn: true, about: "hold --users idle client connections (default 50,000, as each node's file-descriptor limit allows; --store redis --nodes 3 for 50,000) with heartbeats: memory per connection, connect rate, change to arrival at 650 watchers",
			run: runConnections},
	}
}

// defaultScenarios are the scenarios run when --scenario is not given.
func defaultScenarios() []string {
	var out []string
	for _, s := range scenarios() {
		if !s.optIn {
			out = append(out, s.name)
		}
	}
	return out
}

func lookupScenario(name string) (scenario, bool) {
	for _, s := range scenarios() {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// isOptIn reports whether name is a heavy, opt-in scenario.
func isOptIn(name string) bool {
	s, ok := lookupScenario(name)
	return ok && s.optIn
}

// needsBulkIDs reports whether scenario name sends getPresencesByUserId,
// which needs bulkIDs distinct users.
func needsBulkIDs(name string) bool { return name == "bulk" || name == "mix" }

func scenarioHelp() string {
	var b strings.Builder
	for _, s := range scenarios() {
		fmt.Fprintf(&b, "\n  %-7s %s", s.name, s.about)
		if s.optIn {
			b.WriteString(" (opt-in)")
		}
	}
	b.WriteString("\n  all     the default ones")
	return b.String()
}

// parseScenarios reads --scenario: names separated by commas, "all" for the
// default ones. It adds what the chosen ones need and returns them in run
// order.
func parseScenarios(list string) ([]string, error) {
	want := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		switch {
		case name == "":
			continue
		case name == "all":
			for _, d := range defaultScenarios() {
				want[d] = true
			}
			continue
		}
		s, ok := lookupScenario(name)
		if !ok {
			return nil, fmt.Errorf("--scenario: unknown scenario %q; want one of:%s", name, scenarioHelp())
		}
		want[name] = true
		for _, n := range s.needs {
			want[n] = true
		}
	}
	var out []string
	for _, s := range scenarios() {
		if want[s.name] {
			out = append(out, s.name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--scenario: no scenario in %q", list)
	}
	return slices.Clip(out), nil
}
