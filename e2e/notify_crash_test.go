package e2e

// Notifications survive a crash: a watched user's change is written to its
// outbox in the same durable write as the change, and kept until delivered
// (DESIGN "one path for every change"; graph-presence.md 4.9). So every
// change presenced acknowledged reaches the receiver at least once, even
// when the receiver was failing and the process was killed with SIGKILL.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seqNum is the number of a sequenceNumber ("A0000000042" -> 42).
func seqNum(t testing.TB, s string) int {
	t.Helper()
	if !seqRE.MatchString(s) {
		t.Fatalf("sequenceNumber %q, want a letter and 10 digits", s)
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil {
		t.Fatalf("sequenceNumber %q: %v", s, err)
	}
	return n
}

func TestNotifyCrashRedelivery(t *testing.T) {
	args := hookedArgs(t, "--rate-limit", "0")
	s1 := startRestartableServer(t, args)
	addr := strings.TrimPrefix(s1.base, "http://")

	f := newFixture(t)
	f.s = s1
	users := []string{f.U1, f.U2, f.U3, newGUID(), newGUID(), newGUID()}
	sk := newSink(t)
	sk.setAnswer(http.StatusServiceUnavailable) // deliveries stay pending
	t0 := nowOn(t, s1)
	// One change each first: a user's first version is floored by the
	// clock's instant; on the frozen test clock every later change adds one.
	for _, u := range users {
		f.mustSet(u, "Available", "Available", "PT1H", "APPrw")
	}
	// A rich bulk subscription (its data carries sequenceNumber), and a basic
	// one of app B on one user.
	sub := f.subscribe("D1ra", richBody(subBody(bulkRes(users...), sk.URL, t0.Add(50*time.Minute))))
	wantStatus(t, sub, http.StatusCreated)
	basic := f.subscribeAs(f.d1raB(), subBody(userRes(users[0]), sk.URL, t0.Add(50*time.Minute)))
	wantStatus(t, basic, http.StatusCreated)

	base := map[string]int{}
	for _, u := range users {
		base[u] = seqNum(t, f.seqOf(u))
	}

	// Load: one writer per user, each write flipping the user's pair, so
	// acknowledged write k leaves the user at sequence base+k.
	const maxWrites = 400 // below the outbox's 1024
	tok := f.tok("APPrw")
	acked := make([]atomic.Int64, len(users))
	var total atomic.Int64
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			hc := &http.Client{Timeout: 10 * time.Second}
			for k := 1; k <= maxWrites; k++ {
				a, b := "Busy", "InACall"
				if k%2 == 0 {
					a, b = "Available", "Available"
				}
				body, _ := json.Marshal(setBody(f.A, a, b, "PT1H"))
				req, _ := http.NewRequest("POST", s1.base+"/v1.0/users/"+u+"/presence/setPresence", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := hc.Do(req)
				if err != nil {
					return // the kill
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					return
				}
				acked[i].Store(int64(k))
				total.Add(1)
			}
		})
	}
	// Kill mid-stream, once a good number of writes are acknowledged.
	deadline := time.Now().Add(20 * time.Second)
	for total.Load() < 300 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if err := s1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s1.exited
	wg.Wait()
	if total.Load() == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	t.Logf("%d writes acknowledged before SIGKILL: %v", total.Load(), func() []int64 {
		var out []int64
		for i := range acked {
			out = append(out, acked[i].Load())
		}
		return out
	}())
	if n := len(sk.accepted()); n != 0 {
		t.Fatalf("the sink accepted %d items while answering 503", n)
	}

	// Restart on the same data directory and port; the receiver recovers.
	killedPosts := len(sk.deliveries()) // every POST after this comes from s2
	sk.setAnswer(http.StatusOK)
	s2, err := startServerOn(addr, args)
	if err != nil {
		t.Fatalf("restarting presenced: %v", err)
	}
	stopAtEnd(t, s2, "the restarted presenced")
	f.s = s2

	// Every acknowledged write is durable: GET shows at least its sequence.
	want := map[string]int{}
	for i, u := range users {
		n := int(acked[i].Load())
		want[u] = base[u] + n
		if got := seqNum(t, f.seqOf(u)); got < want[u] {
			t.Errorf("user %d: sequence %d after restart, below the last acknowledged %d", i, got, want[u])
		}
	}

	// Every acknowledged change is delivered at least once (the outboxes are
	// re-queued at start-up); nothing needs the clock to move.
	subID, basicID := sub.str("id"), basic.str("id")
	type note struct {
		user string
		seq  int
		pair string
	}
	var notes []note // the rich subscription's accepted items, decrypted, in order
	seen := map[string]map[int]bool{}
	basicSeen, done := 0, 0
	collect := func() {
		items := sk.accepted()
		for _, it := range items[done:] {
			switch it["subscriptionId"] {
			case basicID:
				basicSeen++
			case subID:
				d := decryptItem(t, it)
				u, _ := d["id"].(string)
				s, _ := d["sequenceNumber"].(string)
				n := note{u, seqNum(t, s), fmt.Sprint(d["availability"], "/", d["activity"])}
				notes = append(notes, n)
				if seen[u] == nil {
					seen[u] = map[int]bool{}
				}
				seen[u][n.seq] = true
			}
		}
		done = len(items)
	}
	missing := func() (string, bool) {
		collect()
		for i, u := range users {
			for k := base[u] + 1; k <= want[u]; k++ {
				if !seen[u][k] {
					return fmt.Sprintf("user %d: sequence %d (acknowledged write %d of %d) not delivered; %d of its notifications delivered",
						i, k, k-base[u], want[u]-base[u], len(seen[u])), false
				}
			}
		}
		if n := want[users[0]] - base[users[0]]; basicSeen < n {
			return fmt.Sprintf("basic subscription: %d notifications delivered, want at least %d", basicSeen, n), false
		}
		return "", true
	}
	var why string
	eventually(t, 60*time.Second, func() bool {
		var ok bool
		why, ok = missing()
		return ok
	}, func() string { return "after the restart: " + why })

	// In order per user, among what was accepted, each with the pair its
	// write set.
	last := map[string]int{}
	for _, n := range notes {
		if n.seq < last[n.user] {
			t.Errorf("user %s: sequence %d delivered after %d", short(n.user), n.seq, last[n.user])
		}
		last[n.user] = n.seq
		wantPair := "Busy/InACall"
		if (n.seq-base[n.user])%2 == 0 {
			wantPair = "Available/Available"
		}
		if n.pair != wantPair {
			t.Errorf("user %s sequence %d notified as %s, want %s", short(n.user), n.seq, n.pair, wantPair)
		}
	}
	// The validation tokens after the restart verify with the restarted
	// server's keys (the signing key is kept in the data directory). Only
	// the restarted server's POSTs count: the first one's carry its tokens.
	verified := false
	for _, d := range sk.deliveries()[killedPosts:] {
		if toks, ok := d.JSON["validationTokens"].([]any); ok && len(toks) > 0 {
			tok, _ := toks[0].(string)
			claims := verifyValidationToken(t, s2, tok)
			if !audIs(claims["aud"], f.A) || claims["tid"] != f.T {
				t.Errorf("validationToken after restart: claims %v", claims)
			}
			verified = true
			break
		}
	}
	if !verified {
		t.Errorf("no rich notification after the restart carried validationTokens")
	}

	// The subscriptions survived too, and still deliver.
	wantStatus(t, f.get(f.p("/subscriptions/%s", subID), "D1ra"), http.StatusOK)
	before := len(sk.accepted())
	f.mustSet(users[1], "DoNotDisturb", "Presenting", "PT1H", "APPrw")
	sk.waitItems(t, before+1, deliveryWithin)
	wantStatus(t, f.s.do(t, "DELETE", f.p("/subscriptions/%s", subID), f.tok("D1ra"), nil), http.StatusNoContent)
	wantStatus(t, f.s.do(t, "DELETE", f.p("/subscriptions/%s", basicID), f.d1raB(), nil), http.StatusNoContent)
}
