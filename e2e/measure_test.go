package e2e

// Measurements of issue #9's resource points (streams, fair delivery): they
// report figures and assert no duration. Each runs only when asked, on a
// server of its own, without the race detector; PRESENCED_E2E_BIN measures
// another build (the one before a change, say), and PRESENCED_MEASURE_ARGS
// adds flags (space-separated) to the server:
//
//	PRESENCED_MEASURE_STREAMS=3000 go test ./e2e -run TestMeasureStreams -v -count=1
//	PRESENCED_MEASURE_FAIR=1 go test ./e2e -run TestMeasureFairDelivery -v -count=1

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// measureArgs are the extra flags of PRESENCED_MEASURE_ARGS.
func measureArgs() []string { return strings.Fields(os.Getenv("PRESENCED_MEASURE_ARGS")) }

// rssOf reads process_resident_memory_bytes from s's /metrics.
func rssOf(t testing.TB, s *server) float64 {
	t.Helper()
	res, err := client.Get(s.base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatal("no process_resident_memory_bytes in /metrics")
	return 0
}

// percentiles renders p50, p99 and max of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	slices.Sort(ds)
	p := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return "p50 " + p(0.5).Round(time.Microsecond).String() + ", p99 " + p(0.99).Round(time.Microsecond).String() +
		", max " + ds[len(ds)-1].Round(time.Microsecond).String()
}

// setPresenceTimed sets user's presence with token and returns how long
// the call took, or -1 when it failed.
func setPresenceTimed(hc *http.Client, s *server, token, app, user, availability, activity string) time.Duration {
	body, _ := json.Marshal(map[string]string{"sessionId": app, "availability": availability, "activity": activity, "expirationDuration": "PT1H"})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1.0/users/"+user+"/presence/setPresence", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		return -1
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return -1
	}
	return time.Since(start)
}

// TestMeasureStreams opens PRESENCED_MEASURE_STREAMS event streams as one
// user (Presence.Read, each on the user's own presence) that never read
// past their headers, then makes 3,000 changes in another tenant with
// another app, and reports the server's RSS before and after and the
// latency of those changes.
func TestMeasureStreams(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PRESENCED_MEASURE_STREAMS"))
	if n <= 0 {
		t.Skip("set PRESENCED_MEASURE_STREAMS=<streams> to measure")
	}
	s := startTestServer(t, hookedArgs(t, append([]string{"--rate-limit", "0"}, measureArgs()...)...), nil)
	f := newFixture(t)
	f.s = s
	rss0 := rssOf(t, s)

	tok := f.tok("D1r")
	path := s.base + "/presenced/stream?$filter=" + url.QueryEscape("id in ('"+f.U1+"')")
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: -1}}
	var (
		mu     sync.Mutex
		open   []*http.Response
		status = map[int]int{}
		wg     sync.WaitGroup
		next   atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := hc.Do(req)
				mu.Lock()
				if err != nil {
					status[-1]++
				} else {
					status[res.StatusCode]++
					if res.StatusCode == http.StatusOK {
						open = append(open, res)
					} else {
						res.Body.Close()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rss1 := rssOf(t, s)

	g := f.inTenant(newGUID())
	token, app := g.tok("APPrw"), g.appOf("APPrw")
	users := make([]string, 50)
	for i := range users {
		users[i] = newGUID()
	}
	wc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var lat []time.Duration
	var failed atomic.Int64
	var latMu sync.Mutex
	const changes = 3000
	var k atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for {
				i := k.Add(1) - 1
				if i >= changes {
					return
				}
				u := users[(int(i)*16+w)%len(users)]
				pair := [2]string{"Busy", "InACall"}
				if i%2 == 1 {
					pair = [2]string{"Available", "Available"}
				}
				d := setPresenceTimed(wc, s, token, app, u, pair[0], pair[1])
				if d < 0 {
					failed.Add(1)
					continue
				}
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			}
		})
	}
	wg.Wait()
	rss2 := rssOf(t, s)
	t.Logf("streams asked %d: answered %v", n, status)
	t.Logf("RSS: %.1f MB at start, %.1f MB with the streams open, %.1f MB after %d changes in another tenant",
		rss0/1e6, rss1/1e6, rss2/1e6, changes)
	t.Logf("another app's setPresence while the streams are open: %s (%d failed)", percentiles(lat), failed.Load())
	cancel()
	for _, res := range open {
		res.Body.Close()
	}
}

// TestMeasureFairDelivery puts 100 subscriptions of one tenant on a
// receiver that answers each notification in 2.8 s, keeps their users
// changing, and reports the change-to-webhook latency of another tenant's
// subscription at a prompt receiver.
func TestMeasureFairDelivery(t *testing.T) {
	if os.Getenv("PRESENCED_MEASURE_FAIR") == "" {
		t.Skip("set PRESENCED_MEASURE_FAIR=1 to measure")
	}
	seconds := envInt("PRESENCED_MEASURE_SECONDS", 20)
	s := startTestServer(t, hookedArgs(t, append([]string{"--rate-limit", "0"}, measureArgs()...)...), nil)
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			_, _ = io.WriteString(w, tok)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(2800 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer slow.Close()
	var mu sync.Mutex
	sent := map[string][]time.Time{}
	var lat []time.Duration
	fast := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
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
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer fast.Close()

	f := newFixture(t)
	f.s = s
	exp := nowOn(t, s).Add(50 * time.Minute)
	// 100 subscriptions in tenant T (one per creator), each on a user of
	// its own.
	slowUsers := make([]string, 100)
	for i := range slowUsers {
		slowUsers[i] = newGUID()
		tok := f.mint(f.delegated(f.T, newGUID(), f.A, "Presence.Read.All"))
		f.mustSubscribeAs(tok, subBody(userRes(slowUsers[i]), slow.URL+"/hook", exp))
	}
	g := f.inTenant(newGUID())
	fastUser := newGUID()
	g.mustSubscribe("D1ra", subBody(userRes(fastUser), fast.URL+"/hook", exp))

	wc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	// The slow tenant: every user changes every 100 ms.
	slowTok, slowApp := f.tok("APPrw"), f.appOf("APPrw")
	for w := range 4 {
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				pair := [2]string{"Busy", "InACall"}
				if n%2 == 1 {
					pair = [2]string{"Available", "Available"}
				}
				for i := w; i < len(slowUsers); i += 4 {
					setPresenceTimed(wc, s, slowTok, slowApp, slowUsers[i], pair[0], pair[1])
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	// The other tenant: one change every 100 ms, timed to its arrival.
	fastTok, fastApp := g.tok("APPrw"), g.appOf("APPrw")
	var changes int
	// Let the slow receiver's backlog form first.
	time.Sleep(2 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		pair := [2]string{"Busy", "InACall"}
		if n%2 == 1 {
			pair = [2]string{"Available", "Available"}
		}
		mu.Lock()
		sent[fastUser] = append(sent[fastUser], time.Now())
		mu.Unlock()
		if setPresenceTimed(wc, s, fastTok, fastApp, fastUser, pair[0], pair[1]) >= 0 {
			changes++
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	eventually(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lat) >= changes
	}, func() string { return "not every change of the other tenant was notified" })
	mu.Lock()
	defer mu.Unlock()
	t.Logf("other tenant's change to webhook received, %d changes: %s", changes, percentiles(lat))
}
