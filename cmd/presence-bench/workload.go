package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
)

// bulkIDs is the number of ids of one getPresencesByUserId: Graph's maximum.
const bulkIDs = 650

// bulkBodies is how many distinct getPresencesByUserId bodies are encoded
// up front, so the client does not spend its CPU encoding 25 KB per request.
const bulkBodies = 32

// sessionPairs are (availability, activity) pairs setPresence accepts.
var sessionPairs = [][2]string{
	{"Available", "Available"}, {"Busy", "InACall"}, {"Busy", "InAConferenceCall"},
	{"Away", "Away"}, {"DoNotDisturb", "Presenting"},
}

// preferredPairs are pairs setUserPreferredPresence accepts.
var preferredPairs = [][2]string{
	{"Available", "Available"}, {"Busy", "Busy"}, {"DoNotDisturb", "DoNotDisturb"},
	{"BeRightBack", "BeRightBack"}, {"Away", "Away"},
}

// app is one calling application: its id, its bearer token, and its
// setPresence bodies (sessionId must be the caller's app id).
type app struct {
	id        string
	auth      string // "Bearer <token>"
	setBodies [][]byte
}

// workload is what the load scenarios send: users, applications and
// pre-encoded bodies. It is read-only once built and shared by all workers.
type workload struct {
	users     []string
	apps      []app
	bulk      [][]byte
	preferred [][]byte
}

// newWorkload builds the requests' ingredients; tokens maps app id to token.
// expiry is the expirationDuration of every setPresence.
func newWorkload(users, appIDs []string, tokens map[string]string, expiry string, seed uint64) (*workload, error) {
	wl := &workload{users: users}
	for _, id := range appIDs {
		tok, ok := tokens[id]
		if !ok {
			return nil, fmt.Errorf("no token for app %s", id)
		}
		a := app{id: id, auth: "Bearer " + tok}
		for _, p := range sessionPairs {
			a.setBodies = append(a.setBodies, mustJSON(map[string]string{
				"sessionId": id, "availability": p[0], "activity": p[1], "expirationDuration": expiry}))
		}
		wl.apps = append(wl.apps, a)
	}
	for _, p := range preferredPairs {
		wl.preferred = append(wl.preferred, mustJSON(map[string]string{
			"availability": p[0], "activity": p[1], "expirationDuration": "PT8H"}))
	}
	if len(users) >= bulkIDs {
		r := newRand(seed, 3)
		for range bulkBodies {
			// 650 distinct users: a random window of a random rotation.
			start := r.IntN(len(users))
			ids := make([]string, bulkIDs)
			for i := range ids {
				ids[i] = users[(start+i)%len(users)]
			}
			wl.bulk = append(wl.bulk, mustJSON(map[string][]string{"ids": ids}))
		}
	}
	return wl, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings always encode
	}
	return b
}

// setBody returns the setPresence body of app a with pair i.
func (a *app) setBody(i int) []byte { return a.setBodies[i%len(a.setBodies)] }

// request builds one request of op against base, choosing the user, the
// app and the body with r.
func (wl *workload) request(ctx context.Context, base, op string, r *rand.Rand) (*http.Request, error) {
	a := &wl.apps[r.IntN(len(wl.apps))]
	user := wl.users[r.IntN(len(wl.users))]
	switch op {
	case opSet:
		return newPost(ctx, base+"/v1.0/users/"+user+"/presence/setPresence", a.auth, a.setBody(r.IntN(len(a.setBodies))))
	case opGet:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1.0/users/"+user+"/presence", nil)
		if err != nil {
			return nil, fmt.Errorf("build GET: %w", err)
		}
		req.Header.Set("Authorization", a.auth)
		return req, nil
	case opBulk:
		if len(wl.bulk) == 0 {
			return nil, fmt.Errorf("%s needs at least %d users", opBulk, bulkIDs)
		}
		return newPost(ctx, base+"/v1.0/communications/getPresencesByUserId", a.auth, wl.bulk[r.IntN(len(wl.bulk))])
	case opPreferred:
		return newPost(ctx, base+"/v1.0/users/"+user+"/presence/setUserPreferredPresence", a.auth, wl.preferred[r.IntN(len(wl.preferred))])
	}
	return nil, fmt.Errorf("unknown operation %q", op)
}

// newPost builds a JSON POST with a bearer token.
func newPost(ctx context.Context, url, auth string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build POST: %w", err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}
