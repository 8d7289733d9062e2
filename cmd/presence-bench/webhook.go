package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The webhook scenario measures "change to webhook received": setPresence
// calls sent open loop at --rate changes/s to users that presence
// subscriptions watch, and a TLS receiver in this process that timestamps
// every notification. Its latency runs from the instant just before the
// setPresence request was sent (not from its answer) until the
// notification's POST body has been read.
//
// Basic notifications name the user and nothing else, so each user has at
// most one change waiting for its notification: the next change goes to a
// user whose last one was notified (the one that waited longest), and a
// notification matches exactly the change it reports. With --users U the
// same user changes every U/--rate seconds (1.3 s at the defaults); if
// notifications lag by more than that, no user is free and the changes due
// are not sent, which the report shows as a shortfall of the rate.

// Parameters of the webhook scenario.
const (
	// defaultRate is --rate: the goal's rate of changes.
	defaultRate = 2000
	// defaultWebhookUsers is --users of the webhook scenario: four
	// subscriptions of Graph's maximum of 650 users, so presenced delivers
	// to four queues side by side.
	defaultWebhookUsers = 4 * subscriptionUsers
	// subscriptionUsers is how many users one subscription watches, Graph's
	// maximum.
	subscriptionUsers = 650
	// subscriptionLifetime is the subscriptions' expirationDateTime from
	// now: within presenced's default maximum of 60 minutes.
	subscriptionLifetime = 59 * time.Minute
	// webhookGrace bounds the wait for the notifications of the last
	// changes; those not received by then are missing. It outlasts
	// presenced's first retry (10 s after a failed delivery).
	webhookGrace = 15 * time.Second
	// streamSubscribers is the stream of newRand of the subscribing users:
	// a user cannot hold more than one presence subscription per app, so
	// each subscription has its own signed-in user.
	streamSubscribers = 4
	// onSchedule is how late after its instant a change may be sent
	// without lowering the rate achieved.
	onSchedule = 100 * time.Millisecond
	// maxNotifyBody bounds a notification POST the receiver reads.
	maxNotifyBody = 16 << 20
)

// The pairs a watched user alternates between; populate leaves it at the
// second, so the first change of the run is already a visible one.
const (
	webhookPairA = 0 // Available/Available in sessionPairs
	webhookPairB = 1 // Busy/InACall
)

// WebhookResult is what the webhook scenario measured.
type WebhookResult struct {
	Users         int `json:"users"`
	Subscriptions int `json:"subscriptions"`
	// AskedRate is --rate; Rate is the changes due in the measured window
	// that were sent and answered 200, per second of the schedule (Due /
	// AskedRate seconds), or when the last was sent more than onSchedule
	// late, of the time until then.
	AskedRate float64 `json:"asked_rate"`
	Rate      float64 `json:"rate"`
	Seconds   float64 `json:"seconds"`
	// Due is the changes whose instant in the schedule fell in the
	// window; Sent those of them sent, Unsent those that were not because
	// every user still awaited a notification, Failed those not answered
	// 200.
	Due        uint64 `json:"due"`
	Sent       uint64 `json:"sent"`
	Unsent     uint64 `json:"unsent"`
	Failed     uint64 `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
	// Notified is how many of the changes sent were notified within
	// webhookGrace of the last send; Missing were not. Unexpected counts
	// notifications that matched no change waiting for one (duplicates,
	// unknown users, a wrong clientState).
	Notified   uint64 `json:"notified"`
	Missing    uint64 `json:"missing"`
	Unexpected uint64 `json:"unexpected"`
	// Posts is how many notification POSTs arrived during the whole run,
	// and PerPost the notifications each carried on average.
	Posts   uint64  `json:"posts"`
	PerPost float64 `json:"notifications_per_post"`
	// Latency from sending a change to receiving its notification, of the
	// changes due in the window.
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	P999ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	// SendLag is how late changes were sent after their instant in the
	// open-loop schedule (the client's own queueing).
	SendLagP99ms float64 `json:"send_lag_p99_ms"`
	SendLagMaxMs float64 `json:"send_lag_max_ms"`
	// ServerWithin100ms is the share of deliveries that presenced's own
	// histogram (presenced_notify_change_to_delivery_seconds: from the
	// change to the receiver's answer) put within 100 ms, over the whole
	// run, warm-up and grace included; negative when it could not be read.
	ServerWithin100ms float64 `json:"server_within_100ms"`
	Grace             string  `json:"grace"`
}

// runWebhook is the webhook scenario: a fresh presenced trusting the
// receiver's certificate, --users users set to Busy, subscriptions for
// them, then --duration of changes at --rate.
func runWebhook(ctx context.Context, b *bench) error {
	rx, err := startReceiver(b.log)
	if err != nil {
		return err
	}
	defer rx.close()
	caFile := filepath.Join(b.tmp, "webhook-ca.pem")
	if err := os.WriteFile(caFile, rx.caPEM, 0o600); err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	t, dataDir, err := b.spawn(ctx, "webhook", b.cfg.ProfileDir != "", "--webhook-ca-file", caFile, "--webhook-allow-private")
	if err != nil {
		return err
	}
	n := b.cfg.usersFor("webhook")
	wl, err := b.workload(ctx, dataDir, n, loadExpiry)
	if err != nil {
		return err
	}
	b.log.Info("populating", "users", n, "pair", sessionPairs[webhookPairB])
	if _, err := populate(ctx, t, wl, populateOptions{conns: b.cfg.Connections, pair: webhookPairB, log: b.log}); err != nil {
		return err
	}
	subs, err := b.subscribe(ctx, t, dataDir, wl.users, rx)
	if err != nil {
		return err
	}
	res := &WebhookResult{Users: n, Subscriptions: subs, AskedRate: b.cfg.Rate, Seconds: b.cfg.Duration.Seconds(),
		Grace: webhookGrace.String(), ServerWithin100ms: -1}
	b.report.Webhook = res
	before, metricsErr := scrape(ctx, t.client, t.base)

	tr := newTracker(wl.users)
	rx.setTracker(tr)
	start := time.Now()
	d := &driver{t: t, wl: wl, tr: tr, rate: b.cfg.Rate, conns: b.cfg.Connections,
		start: start, from: start.Add(b.cfg.Warmup), end: start.Add(b.cfg.Warmup + b.cfg.Duration)}
	tr.window(d.from, d.end)
	profile := ""
	if b.cfg.ProfileDir != "" {
		profile = filepath.Join(b.cfg.ProfileDir, "presenced-webhook.pprof")
	}
	b.log.Info("changes", "rate", b.cfg.Rate, "users", n, "subscriptions", subs, "duration", b.cfg.Duration, "warmup", b.cfg.Warmup)
	lr := &loadRun{scenario: "webhook", target: t, duration: b.cfg.Duration, profile: profile}
	var run RunResult
	var sampleErr error
	var wg sync.WaitGroup
	wg.Go(func() { run, sampleErr = lr.sample(ctx, d.from, d.end) })
	d.drive(ctx)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if sampleErr != nil {
		return sampleErr
	}
	b.log.Info("waiting for the last notifications", "waiting", tr.waiting(), "grace", webhookGrace)
	if err := tr.await(ctx, webhookGrace); err != nil {
		return err
	}
	run.Noisy = b.cfg.MaxOtherCPU >= 0 && run.ServerCPUCores > 0 && run.OtherCPUCores > b.cfg.MaxOtherCPU
	if after, err := scrape(ctx, t.client, t.base); err == nil && metricsErr == nil {
		res.ServerWithin100ms = deliveredWithin(before, after, "0.1")
	}
	tr.summarize(res)
	res.Posts, res.Unexpected = rx.counts()
	res.Unexpected += tr.unexpectedCount()
	if res.Posts > 0 {
		res.PerPost = float64(tr.matched()) / float64(res.Posts)
	}
	run.Ops = []OpResult{opResult(opSet, tr.setStats(), b.cfg.Duration)}
	run.finish()
	b.report.Runs = append(b.report.Runs, run)
	b.log.Info("measured", "scenario", "webhook", "rate", thousands(res.Rate), "p99_ms", fmt.Sprintf("%.2f", res.P99ms),
		"missing", res.Missing, "other_cpu_cores", fmt.Sprintf("%.2f", run.OtherCPUCores))
	t.client.CloseIdleConnections()
	return b.stop(t.proc)
}

// deliveredWithin returns the share of presenced's deliveries between two
// scrapes that its change-to-delivery histogram counts at or below le
// seconds; -1 when there were none or the samples are missing.
func deliveredWithin(before, after map[string]float64, le string) float64 {
	const name = "presenced_notify_change_to_delivery_seconds"
	bucket := name + `_bucket{le="` + le + `"}`
	b1, ok1 := after[bucket]
	c1, ok2 := after[name+"_count"]
	if !ok1 || !ok2 {
		return -1
	}
	total := c1 - before[name+"_count"]
	if total <= 0 {
		return -1
	}
	return (b1 - before[bucket]) / total
}

// subscribe creates the subscriptions watching users, subscriptionUsers
// each, every one signed in as its own subscribing user, with the
// receiver's URL; presenced validates the URL before it answers. It returns
// how many it created.
func (b *bench) subscribe(ctx context.Context, t *target, dataDir string, users []string, rx *receiver) (int, error) {
	bin, err := b.presencedBinary(ctx)
	if err != nil {
		return 0, err
	}
	r := newRand(b.cfg.Seed, streamSubscribers)
	n := 0
	for lo := 0; lo < len(users); lo += subscriptionUsers {
		ids := users[lo:min(lo+subscriptionUsers, len(users))]
		tok, err := mintDelegated(ctx, bin, dataDir, guid(r))
		if err != nil {
			return n, err
		}
		body := mustJSON(map[string]string{
			"changeType":         "updated",
			"notificationUrl":    rx.url,
			"resource":           bulkResource(ids),
			"expirationDateTime": time.Now().Add(subscriptionLifetime).UTC().Format(time.RFC3339),
			"clientState":        rx.clientState,
		})
		req, err := newPost(ctx, t.base+"/v1.0/subscriptions", "Bearer "+tok, body)
		if err != nil {
			return n, err
		}
		status, detail, err := send(t.client, req)
		if err != nil {
			return n, fmt.Errorf("subscribe: %w", err)
		}
		if status != http.StatusCreated {
			return n, fmt.Errorf("subscribe: HTTP %d: %s", status, detail)
		}
		n++
	}
	b.log.Info("subscribed", "subscriptions", n, "users", len(users))
	return n, nil
}

// bulkResource is the resource of a subscription to the presence of ids.
func bulkResource(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + id + "'"
	}
	return "/communications/presences?$filter=id in (" + strings.Join(q, ",") + ")"
}

// mintDelegated asks `presenced token` for a delegated token of user with
// Presence.Read.All, which presence subscriptions need, signed by the
// development key in dataDir.
func mintDelegated(ctx context.Context, bin, dataDir, user string) (string, error) {
	tok, err := mintToken(ctx, bin, dataDir, "--user", user, "--app", devApp, "--scopes", "Presence.Read.All", "--ttl", tokenTTL.String())
	if err != nil {
		return "", fmt.Errorf("presenced token --user %s: %w", user, err)
	}
	return tok, nil
}

// driver sends the changes: an open-loop schedule of one change every
// 1/rate seconds from start until end, handed to conns senders. A change
// is sent however late the senders are (the tracker records by how much);
// only when no user is free is it not sent at all.
type driver struct {
	t     *target
	wl    *workload
	tr    *tracker
	rate  float64
	conns int
	// start is the first instant of the schedule; [from, end) is measured.
	start, from, end time.Time
}

// change is one setPresence to send: user index, pair, and its instant.
type change struct {
	user, pair int
	due        time.Time
}

// drive runs the schedule until d.end, then waits for the senders.
func (d *driver) drive(ctx context.Context) {
	jobs := make(chan change, 4*d.conns)
	var wg sync.WaitGroup
	for range d.conns {
		wg.Go(func() {
			for c := range jobs {
				d.send(ctx, c)
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	for k := 0; ; k++ {
		due := d.start.Add(time.Duration(float64(k) * float64(time.Second) / d.rate))
		if !due.Before(d.end) {
			return
		}
		if err := sleepUntil(ctx, due); err != nil {
			return
		}
		d.tr.scheduled(due)
		user, pair, ok := d.tr.take()
		if !ok {
			d.tr.unsent(due)
			continue
		}
		select {
		case jobs <- change{user: user, pair: pair, due: due}:
		case <-ctx.Done():
			return
		}
	}
}

// send sends one change.
func (d *driver) send(ctx context.Context, c change) {
	a := &d.wl.apps[c.user%len(d.wl.apps)] // the app populate used
	req, err := newPost(ctx, d.t.base+"/v1.0/users/"+d.wl.users[c.user]+"/presence/setPresence", a.auth, a.setBody(c.pair))
	if err != nil {
		d.tr.giveBack(c.user)
		d.tr.unsent(c.due)
		return
	}
	at := time.Now()
	gen := d.tr.sent(c.user, c.due, at)
	status, detail, err := send(d.t.client, req)
	took := time.Since(at)
	switch {
	case err != nil && ctx.Err() != nil:
		d.tr.failed(c.user, gen, "")
	case err != nil:
		d.tr.failed(c.user, gen, err.Error())
	case status != http.StatusOK:
		d.tr.failed(c.user, gen, fmt.Sprintf("HTTP %d: %s", status, detail))
	default:
		d.tr.answered(c.due, took)
	}
}

// receiver is the webhook endpoint: HTTPS on 127.0.0.1 with a certificate
// of its own, which the spawned presenced trusts through --webhook-ca-file.
type receiver struct {
	srv         *http.Server
	url         string
	caPEM       []byte
	clientState string

	mu         sync.Mutex
	tr         *tracker
	posts      uint64
	unexpected uint64 // bad bodies and wrong clientStates
}

// startReceiver listens on an ephemeral port of 127.0.0.1 and serves the
// validation handshake and notifications.
func startReceiver(log *slog.Logger) (*receiver, error) {
	cert, caPEM, err := selfSigned(time.Now())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	rx := &receiver{url: "https://" + ln.Addr().String() + "/notify", caPEM: caPEM, clientState: "presence-bench-" + rand.Text()}
	rx.srv = &http.Server{
		Handler:           rx,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() { _ = rx.srv.ServeTLS(ln, "", "") }()
	return rx, nil
}

func (rx *receiver) close() { _ = rx.srv.Close() }

func (rx *receiver) setTracker(tr *tracker) {
	rx.mu.Lock()
	rx.tr = tr
	rx.mu.Unlock()
}

// counts returns the POSTs of notifications received and those that were
// unreadable or carried a wrong clientState.
func (rx *receiver) counts() (posts, unexpected uint64) {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	return rx.posts, rx.unexpected
}

// notification is the part of a changeNotification the receiver reads.
type notification struct {
	ClientState  string `json:"clientState"`
	Resource     string `json:"resource"`
	ResourceData struct {
		ID string `json:"id"`
	} `json:"resourceData"`
}

// ServeHTTP answers the validation handshake (the token, as text/plain)
// and takes notifications: each is matched to its change when the whole
// body has been read, then the POST is answered 202.
func (rx *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, tok)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxNotifyBody))
	at := time.Now()
	var c struct {
		Value []notification `json:"value"`
	}
	if err == nil {
		err = json.Unmarshal(body, &c)
	}
	rx.mu.Lock()
	rx.posts++
	tr := rx.tr
	if err != nil {
		rx.unexpected++
	}
	users := make([]string, 0, len(c.Value))
	for _, v := range c.Value {
		if v.ClientState != rx.clientState {
			rx.unexpected++
			continue
		}
		users = append(users, notifiedUser(v))
	}
	rx.mu.Unlock()
	if err != nil {
		http.Error(w, "unreadable notification", http.StatusBadRequest)
		return
	}
	if tr != nil {
		tr.notified(users, at)
	}
	w.WriteHeader(http.StatusAccepted)
}

// notifiedUser returns the user a presence notification is about: its
// resourceData id, else the last segment of its resource
// ("communications/presences/{id}").
func notifiedUser(v notification) string {
	if v.ResourceData.ID != "" {
		return strings.ToLower(v.ResourceData.ID)
	}
	return strings.ToLower(v.Resource[strings.LastIndexByte(v.Resource, '/')+1:])
}

// selfSigned makes the receiver's key and a self-signed certificate of it
// for 127.0.0.1, valid from an hour before now for a day, and returns the
// certificate's PEM too.
func selfSigned(now time.Time) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("webhook certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("webhook certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "presence-bench webhook receiver"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("webhook certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// tracker matches notifications to changes. Each user has at most one
// change waiting for its notification; users with none wait in a queue,
// longest idle first, for their next change. It is safe for concurrent use.
type tracker struct {
	mu    sync.Mutex
	index map[string]int // user id -> index in slots
	slots []userSlot
	free  ring
	// from and end bound the measured window.
	from, end time.Time

	lat Histogram // change sent to notification received, measured changes
	lag Histogram // change sent after its instant in the schedule
	// set is the setPresence answers of measured changes: its errors and
	// firstErr are those of the changes that failed.
	set      opStats
	due      uint64
	sentN    uint64
	unsentN  uint64
	lastSent time.Time // of the measured changes
	// notifiedN counts notified measured changes, notifiedAll every
	// matched notification.
	notifiedN, notifiedAll uint64
	unexpected             uint64
}

// userSlot is one watched user's state in the tracker.
type userSlot struct {
	sentAt   time.Time
	gen      uint64 // changes sent to the user
	waiting  bool   // sent, not yet notified
	measured bool   // due inside the window
	retired  bool   // a change failed: its outcome is unknown
}

// newTracker tracks users, all free.
func newTracker(users []string) *tracker {
	tr := &tracker{index: make(map[string]int, len(users)), slots: make([]userSlot, len(users)), free: newRing(len(users))}
	for i, u := range users {
		tr.index[strings.ToLower(u)] = i
		tr.free.push(i)
	}
	return tr
}

// window sets the measured window [from, end): the changes due in it are
// measured.
func (tr *tracker) window(from, end time.Time) {
	tr.mu.Lock()
	tr.from, tr.end = from, end
	tr.mu.Unlock()
}

func (tr *tracker) measured(t time.Time) bool { return !t.Before(tr.from) && t.Before(tr.end) }

// scheduled counts a change whose instant has come.
func (tr *tracker) scheduled(due time.Time) {
	tr.mu.Lock()
	if tr.measured(due) {
		tr.due++
	}
	tr.mu.Unlock()
}

// take returns the user that has been free longest and the pair of its
// next change (alternating, so every change is visible); false when every
// user awaits a notification.
func (tr *tracker) take() (user, pair int, ok bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	i, ok := tr.free.pop()
	if !ok {
		return 0, 0, false
	}
	pair = webhookPairA
	if tr.slots[i].gen%2 == 1 {
		pair = webhookPairB
	}
	return i, pair, true
}

// giveBack returns a taken user that was not sent a change.
func (tr *tracker) giveBack(user int) {
	tr.mu.Lock()
	tr.free.push(user)
	tr.mu.Unlock()
}

// unsent counts a change that was due but not sent: no user was free.
func (tr *tracker) unsent(due time.Time) {
	tr.mu.Lock()
	if tr.measured(due) {
		tr.unsentN++
	}
	tr.mu.Unlock()
}

// sent records that user's change, due at due, is sent at at; it returns
// the change's generation, for failed.
func (tr *tracker) sent(user int, due, at time.Time) uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := &tr.slots[user]
	s.gen++
	s.waiting, s.sentAt, s.measured = true, at, tr.measured(due)
	if s.measured {
		tr.sentN++
		tr.lag.Record(at.Sub(due))
		if at.After(tr.lastSent) {
			tr.lastSent = at
		}
	}
	return s.gen
}

// answered records a setPresence, due at due, answered 200 after took.
func (tr *tracker) answered(due time.Time, took time.Duration) {
	tr.mu.Lock()
	if tr.measured(due) {
		tr.set.hist.Record(took)
	}
	tr.mu.Unlock()
}

// failed records that change gen of user was not answered 200 (msg says
// why; empty when the run was cancelled). Whether it took effect is
// unknown, so the user gets no more changes.
func (tr *tracker) failed(user int, gen uint64, msg string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := &tr.slots[user]
	if s.measured && msg != "" {
		tr.set.errors++
		if tr.set.firstErr == "" {
			tr.set.firstErr = msg
		}
	}
	if s.gen == gen && s.waiting {
		s.waiting, s.retired = false, true
	}
}

// notified matches the notifications of users received at at.
func (tr *tracker) notified(users []string, at time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, u := range users {
		i, ok := tr.index[u]
		if !ok || !tr.slots[i].waiting {
			tr.unexpected++
			continue
		}
		s := &tr.slots[i]
		s.waiting = false
		tr.notifiedAll++
		if s.measured {
			tr.notifiedN++
			tr.lat.Record(at.Sub(s.sentAt))
		}
		if !s.retired {
			tr.free.push(i)
		}
	}
}

// waiting returns how many measured changes await their notification.
func (tr *tracker) waiting() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for i := range tr.slots {
		if tr.slots[i].waiting && tr.slots[i].measured {
			n++
		}
	}
	return n
}

// await waits until no measured change awaits its notification, or for
// grace.
func (tr *tracker) await(ctx context.Context, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for tr.waiting() > 0 && time.Now().Before(deadline) {
		if err := sleepUntil(ctx, time.Now().Add(10*time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

func (tr *tracker) unexpectedCount() uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.unexpected
}

// matched returns how many notifications matched a change, measured or
// not.
func (tr *tracker) matched() uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.notifiedAll
}

// setStats returns the setPresence answers of the window.
func (tr *tracker) setStats() *opStats {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	st := tr.set
	return &st
}

// summarize fills in res from what the tracker saw; changes still waiting
// are missing.
func (tr *tracker) summarize(res *WebhookResult) {
	missing := uint64(tr.waiting())
	tr.mu.Lock()
	defer tr.mu.Unlock()
	res.Due, res.Sent, res.Unsent, res.Failed, res.FirstError = tr.due, tr.sentN, tr.unsentN, tr.set.errors, tr.set.firstErr
	res.Notified, res.Missing = tr.notifiedN, missing
	if secs := max(float64(tr.due)/res.AskedRate, (tr.lastSent.Sub(tr.from) - onSchedule).Seconds()); secs > 0 && res.AskedRate > 0 {
		res.Rate = float64(tr.sentN-tr.set.errors) / secs
	}
	h := &tr.lat
	res.P50ms, res.P90ms, res.P99ms, res.P999ms, res.MaxMs = ms(h.Quantile(0.50)), ms(h.Quantile(0.90)), ms(h.Quantile(0.99)),
		ms(h.Quantile(0.999)), ms(h.Max())
	res.SendLagP99ms, res.SendLagMaxMs = ms(tr.lag.Quantile(0.99)), ms(tr.lag.Max())
}

// ring is a FIFO queue of user indices, of fixed capacity.
type ring struct {
	buf     []int
	head, n int
}

func newRing(capacity int) ring { return ring{buf: make([]int, capacity)} }

func (r *ring) push(v int) {
	if r.n == len(r.buf) {
		panic("presence-bench: tracker queue overflow") // each user is queued at most once
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

func (r *ring) pop() (int, bool) {
	if r.n == 0 {
		return 0, false
	}
	v := r.buf[r.head]
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v, true
}
