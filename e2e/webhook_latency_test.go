package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWebhookLatency measures change-to-webhook latency: setPresence calls at
// a fixed rate on users of one bulk subscription, a local TLS receiver
// timestamps each notification, and each is matched to the call that
// caused it (per user, in order). It reports p50 and p99; it asserts no
// duration. It runs only when asked, without the race detector:
//
//	PRESENCED_WEBHOOK_LATENCY=1 go test ./e2e -run TestWebhookLatency -v -count=1
//
// PRESENCED_WEBHOOK_RATE (changes/s, default 2000) and
// PRESENCED_WEBHOOK_SECONDS (default 10) tune it.
func TestWebhookLatency(t *testing.T) {
	if os.Getenv("PRESENCED_WEBHOOK_LATENCY") == "" {
		t.Skip("set PRESENCED_WEBHOOK_LATENCY=1 to measure")
	}
	rate := envInt("PRESENCED_WEBHOOK_RATE", 2000)
	seconds := envInt("PRESENCED_WEBHOOK_SECONDS", 10)
	limitFor(t, 0)

	f := newFixture(t)
	users := make([]string, 650)
	for i := range users {
		users[i] = newGUID()
	}
	var mu sync.Mutex
	sent := map[string][]time.Time{} // per user, send instants not yet matched
	var lat []time.Duration
	unmatched := 0
	rx := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, tok)
			return
		}
		arrived := time.Now()
		var body struct {
			Value []struct {
				Resource string `json:"resource"`
			} `json:"value"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		for _, v := range body.Value {
			u := v.Resource[strings.LastIndexByte(v.Resource, '/')+1:]
			if q := sent[u]; len(q) > 0 {
				lat = append(lat, arrived.Sub(q[0]))
				sent[u] = q[1:]
			} else {
				unmatched++
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer rx.Close()
	f.mustSubscribe("D1ra", subBody(bulkRes(users...), rx.URL+"/hook", nowOn(t, f.s).Add(50*time.Minute)))

	app := f.tok("APPrw")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	pairs := [][2]string{{"Busy", "InACall"}, {"Available", "Available"}}
	// Each user belongs to one worker, so its changes are sent in order.
	const workers = 64
	interval := time.Duration(float64(time.Second) * workers / float64(rate))
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	var changes, failures int64
	var countMu sync.Mutex
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			toggle := map[string]int{}
			for n := 0; time.Now().Before(deadline); n++ {
				<-tick.C
				u := users[w+workers*(n%(len(users)/workers))]
				p := pairs[toggle[u]%2]
				toggle[u]++
				body, _ := json.Marshal(map[string]string{"sessionId": f.appOf("APPrw"), "availability": p[0], "activity": p[1], "expirationDuration": "PT1H"})
				req, _ := http.NewRequest(http.MethodPost, f.s.base+"/v1.0/users/"+u+"/presence/setPresence", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+app)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				mu.Lock()
				sent[u] = append(sent[u], start)
				mu.Unlock()
				resp, err := client.Do(req)
				countMu.Lock()
				if err != nil || resp.StatusCode != http.StatusOK {
					failures++
				} else {
					changes++
				}
				countMu.Unlock()
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	// Let the last notifications arrive.
	eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lat)+unmatched >= int(changes)
	}, func() string { return "not every change was notified" })
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("%d changes in %ds (%.0f/s asked, %.0f/s done), %d failed; %d notifications matched, %d unmatched",
		changes, seconds, float64(rate), float64(changes)/float64(seconds), failures, len(lat), unmatched)
	t.Logf("change to webhook received: p50 %v, p90 %v, p99 %v, max %v", pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1])
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
