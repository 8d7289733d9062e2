package e2e

// The webhook side of change notifications (graph-presence.md section 4):
// a real TLS receiver (sink) that answers the validation handshake and
// records every notification, the crypto a receiver of rich notifications
// runs (RSA-OAEP unwrap, HMAC check, AES-CBC decrypt, validationToken
// verification against the server's JWKS), and subscription helpers.

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// sink: a TLS webhook receiver

// handshakeReq is one validation request a sink received.
type handshakeReq struct {
	Method      string
	Path        string
	Query       map[string][]string
	RawQuery    string // as sent: order and encoding
	ContentType string
	Token       string // the decoded validationToken
	Body        []byte
}

// delivery is one notification POST a sink received, and what it answered.
type delivery struct {
	Path        string
	Query       map[string][]string
	RawQuery    string // as sent: order and encoding
	ContentType string
	Body        []byte
	JSON        map[string]any
	Status      int
}

// items returns the value array of a delivery.
func (d *delivery) items() []map[string]any {
	var out []map[string]any
	arr, _ := d.JSON["value"].([]any)
	for _, v := range arr {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out
}

// sink is a webhook receiver served by httptest.NewTLSServer: the server
// under test trusts its certificate through --webhook-ca-file. By default it
// echoes the validation token exactly (status 200, text/plain) and answers
// every notification 202.
type sink struct {
	URL string
	ts  *httptest.Server

	mu         sync.Mutex
	handshakes []*handshakeReq
	posts      []*delivery
	// echo computes the handshake answer; nil echoes the token.
	echo func(token string) (status int, body string)
	// hold, when set, makes handshakes wait until the request is abandoned
	// or released is closed (a receiver that never answers).
	hold bool
	// answer computes the status of the nth (0-based) notification POST
	// (hang: none); nil answers 202.
	answer func(n int) int
	// delay, when set, is how long each notification POST waits before
	// its answer (a slow receiver).
	delay    time.Duration
	released chan struct{}
	seenHS   chan struct{} // receives (without blocking) on every handshake
}

func newSink(t testing.TB) *sink {
	t.Helper()
	s := &sink{released: make(chan struct{}), seenHS: make(chan struct{}, 16)}
	s.ts = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL
	t.Cleanup(s.ts.Close)
	t.Cleanup(func() { close(s.released) }) // runs first: frees held handlers
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	if q.Has("validationToken") {
		h := &handshakeReq{Method: r.Method, Path: r.URL.Path, Query: q, RawQuery: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), Token: q.Get("validationToken"), Body: body}
		s.mu.Lock()
		s.handshakes = append(s.handshakes, h)
		hold, echo := s.hold, s.echo
		s.mu.Unlock()
		select {
		case s.seenHS <- struct{}{}:
		default:
		}
		if hold {
			select {
			case <-r.Context().Done():
			case <-s.released:
			case <-time.After(30 * time.Second):
			}
			return
		}
		status, answer := http.StatusOK, h.Token
		if echo != nil {
			status, answer = echo(h.Token)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
		return
	}
	d := &delivery{Path: r.URL.Path, Query: q, RawQuery: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"), Body: body}
	_ = json.Unmarshal(body, &d.JSON)
	s.mu.Lock()
	n := len(s.posts)
	d.Status = http.StatusAccepted
	if s.answer != nil {
		d.Status = s.answer(n)
	}
	s.posts = append(s.posts, d)
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-r.Context().Done():
		case <-s.released:
		case <-time.After(delay):
		}
	}
	if d.Status == hang {
		// A receiver that never answers: the server gives up (its delivery
		// timeout) and the request's context ends.
		select {
		case <-r.Context().Done():
		case <-s.released:
		case <-time.After(30 * time.Second):
		}
		return
	}
	w.WriteHeader(d.Status)
}

// hang, as a sink's answer, never answers.
const hang = 0

// setAnswer sets the status of the notification POSTs from now on.
func (s *sink) setAnswer(status int) { s.setAnswerFunc(func(int) int { return status }) }

// setAnswerFunc sets the status of the nth (0-based) notification POST.
func (s *sink) setAnswerFunc(f func(n int) int) {
	s.mu.Lock()
	s.answer = f
	s.mu.Unlock()
}

// setEcho sets the handshake answer (nil: the token, exactly).
func (s *sink) setEcho(f func(token string) (status int, body string)) {
	s.mu.Lock()
	s.echo = f
	s.mu.Unlock()
}

// setHold makes handshakes go unanswered (or answered again).
func (s *sink) setHold(hold bool) {
	s.mu.Lock()
	s.hold = hold
	s.mu.Unlock()
}

// handshakeList returns the handshakes received so far.
func (s *sink) handshakeList() []*handshakeReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.handshakes)
}

// deliveries returns the notification POSTs received so far.
func (s *sink) deliveries() []*delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.posts)
}

// accepted returns the notification items of the POSTs the sink answered
// with a 2xx, in the order received.
func (s *sink) accepted() []map[string]any {
	var out []map[string]any
	for _, d := range s.deliveries() {
		if d.Status >= 200 && d.Status <= 299 {
			out = append(out, d.items()...)
		}
	}
	return out
}

// waitItems waits (real time, with a deadline) until the sink accepted at
// least n notification items, and returns all it accepted.
func (s *sink) waitItems(t testing.TB, n int, within time.Duration) []map[string]any {
	t.Helper()
	var got []map[string]any
	eventually(t, within, func() bool {
		got = s.accepted()
		return len(got) >= n
	}, func() string {
		return fmt.Sprintf("the sink accepted %d notification items, want %d: %s", len(got), n, s.dump())
	})
	return got
}

// waitPosts waits until the sink received at least n notification POSTs.
func (s *sink) waitPosts(t testing.TB, n int, within time.Duration) []*delivery {
	t.Helper()
	var got []*delivery
	eventually(t, within, func() bool {
		got = s.deliveries()
		return len(got) >= n
	}, func() string {
		return fmt.Sprintf("the sink received %d notification POSTs, want %d: %s", len(got), n, s.dump())
	})
	return got
}

func (s *sink) dump() string {
	var b strings.Builder
	for i, d := range s.deliveries() {
		fmt.Fprintf(&b, "\n  #%d answered %d: %s", i, d.Status, truncate(string(d.Body), 400))
	}
	return b.String()
}

// eventually polls cond until it holds or within passes (the polling
// interval is not a wait for behaviour: the deadline is).
func eventually(t testing.TB, within time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, msg())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deliveryWithin is the time given to a marker notification: a change
// that must reach its sink (C11 #104: strict profile 10 s).
const deliveryWithin = 10 * time.Second

// ---------------------------------------------------------------------------
// Subscriptions

// graphTime renders an instant as Graph does.
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// nowOn reads the service clock of server s.
func nowOn(t testing.TB, s *server) time.Time {
	t.Helper()
	r := s.do(t, "GET", "/_test/clock", "", nil)
	wantStatus(t, r, http.StatusOK)
	return parseNow(t, r)
}

// mint signs arbitrary claims with the fixture's algorithm.
func (f *fixture) mint(claims map[string]any) string { return keys.Mint(f.alg, claims) }

// userRes is the single-user presence subscription resource.
func userRes(u string) string { return "communications/presences/" + u }

// bulkRes is the bulk presence subscription resource.
func bulkRes(users ...string) string {
	q := make([]string, len(users))
	for i, u := range users {
		q[i] = "'" + u + "'"
	}
	return "communications/presences?$filter=id in (" + strings.Join(q, ",") + ")"
}

// subBody is a presence subscription request.
func subBody(resource, url string, exp time.Time) map[string]any {
	return map[string]any{"changeType": "updated", "notificationUrl": url, "resource": resource,
		"expirationDateTime": graphTime(exp)}
}

// richBody makes a subscription request rich (includeResourceData), with
// the suite's encryption certificate.
func richBody(b map[string]any) map[string]any {
	c := encCert()
	b["includeResourceData"] = true
	b["encryptionCertificate"] = c.b64
	b["encryptionCertificateId"] = c.id
	return b
}

// subscribeAs sends POST /subscriptions with a raw bearer token.
func (f *fixture) subscribeAs(token string, body any) *resp {
	f.t.Helper()
	return f.s.do(f.t, "POST", f.p("/subscriptions"), token, body)
}

// subscribe sends POST /subscriptions with the named token.
func (f *fixture) subscribe(tokName string, body any) *resp {
	f.t.Helper()
	return f.subscribeAs(f.tok(tokName), body)
}

// mustSubscribeAs creates a subscription (201) and deletes it when the test
// ends; it returns the answer.
func (f *fixture) mustSubscribeAs(token string, body any) *resp {
	f.t.Helper()
	r := f.subscribeAs(token, body)
	wantStatus(f.t, r, http.StatusCreated)
	id := r.str("id")
	if !guidRE.MatchString(id) {
		f.t.Fatalf("%s: id %q is not a GUID", r, id)
	}
	s, path, t := f.s, f.p("/subscriptions/%s", id), f.t
	t.Cleanup(func() {
		r := s.do(t, "DELETE", path, token, nil)
		if r.Status != http.StatusNoContent && r.Status != http.StatusNotFound {
			t.Errorf("cleanup: %s", r)
		}
	})
	return r
}

// mustSubscribe is mustSubscribeAs with a named token.
func (f *fixture) mustSubscribe(tokName string, body any) *resp {
	f.t.Helper()
	return f.mustSubscribeAs(f.tok(tokName), body)
}

// d1raB is a delegated token of U1 with Presence.Read.All for app B.
func (f *fixture) d1raB() string { return f.mint(f.delegated(f.T, f.U1, f.B, "Presence.Read.All")) }

// ---------------------------------------------------------------------------
// Rich notifications: what a receiver does

// encryptionCert is the suite's self-made encryption certificate: an
// RSA-2048 key and a self-signed X.509 certificate of it.
type encryptionCert struct {
	key        *rsa.PrivateKey
	der        []byte
	b64        string // standard base64 of the DER, as encryptionCertificate
	id         string // encryptionCertificateId
	thumbprint string // uppercase hex SHA-1 of the DER
}

var (
	encCertOnce sync.Once
	encCertVal  *encryptionCert
)

func encCert() *encryptionCert {
	encCertOnce.Do(func() { encCertVal = newEncCert("e2e-cert-2026-01") })
	return encCertVal
}

// newEncCert makes an encryption certificate with the encryptionCertificateId
// id.
func newEncCert(id string) *encryptionCert {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(20260112),
		Subject:      pkix.Name{CommonName: "presenced e2e notification receiver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	sum := sha1.Sum(der)
	return &encryptionCert{key: key, der: der, b64: base64.StdEncoding.EncodeToString(der),
		id: id, thumbprint: strings.ToUpper(hex.EncodeToString(sum[:]))}
}

// decryptItem runs the receiver's checks of section 4.6 on a rich item's
// encryptedContent (RSA-OAEP SHA-1 unwrap, HMAC-SHA256 over the raw
// ciphertext, AES-256-CBC with IV = key[0:16] and PKCS #7) and returns the
// decoded resource data.
func decryptItem(t testing.TB, item map[string]any) map[string]any {
	t.Helper()
	return decryptWith(t, item, encCert())
}

// decryptWith is decryptItem for an item encrypted for certificate c.
func decryptWith(t testing.TB, item map[string]any, c *encryptionCert) map[string]any {
	t.Helper()
	ec, ok := item["encryptedContent"].(map[string]any)
	if !ok {
		t.Fatalf("notification item without encryptedContent: %v", item)
	}
	str := func(k string) string {
		s, _ := ec[k].(string)
		return s
	}
	b64dec := func(k string) []byte {
		b, err := base64.StdEncoding.DecodeString(str(k))
		if err != nil {
			t.Fatalf("encryptedContent.%s is not standard base64: %v", k, err)
		}
		return b
	}
	key, err := rsa.DecryptOAEP(sha1.New(), nil, c.key, b64dec("dataKey"), nil)
	if err != nil {
		t.Fatalf("RSA-OAEP (SHA-1) unwrap of dataKey: %v", err)
	}
	if len(key) != 32 {
		t.Fatalf("dataKey unwraps to %d bytes, want 32", len(key))
	}
	ciphertext := b64dec("data")
	mac := hmac.New(sha256.New, key)
	mac.Write(ciphertext)
	if !hmac.Equal(mac.Sum(nil), b64dec("dataSignature")) {
		t.Fatalf("dataSignature is not HMAC-SHA256(key, base64dec(data))")
	}
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		t.Fatalf("ciphertext of %d bytes is not whole AES blocks", len(ciphertext))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, key[:aes.BlockSize]).CryptBlocks(plain, ciphertext)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatalf("bad PKCS #7 padding in %x", plain[len(plain)-aes.BlockSize:])
	}
	plain = plain[:len(plain)-pad]
	var data map[string]any
	if err := json.Unmarshal(plain, &data); err != nil {
		t.Fatalf("decrypted data is not JSON: %v: %q", err, plain)
	}
	if got := str("encryptionCertificateId"); got != c.id {
		t.Errorf("encryptionCertificateId = %q, want the subscription's %q", got, c.id)
	}
	if got := str("encryptionCertificateThumbprint"); got != c.thumbprint {
		t.Errorf("encryptionCertificateThumbprint = %q, want %q (uppercase hex SHA-1 of the DER)", got, c.thumbprint)
	}
	return data
}

// richItem is the decrypted data of one rich notification item.
type richItem struct {
	User, Availability, Activity, Seq string
	Resource                          string
	Data                              map[string]any
}

func (r richItem) pair() string { return r.Availability + "/" + r.Activity }

// richItems decrypts every accepted item of the sink.
func richItems(t testing.TB, items []map[string]any) []richItem {
	t.Helper()
	out := make([]richItem, 0, len(items))
	for _, it := range items {
		d := decryptItem(t, it)
		s := func(k string) string { v, _ := d[k].(string); return v }
		res, _ := it["resource"].(string)
		out = append(out, richItem{User: s("id"), Availability: s("availability"), Activity: s("activity"),
			Seq: s("sequenceNumber"), Resource: res, Data: d})
	}
	return out
}

// waitRich waits until the sink accepted n items and returns them decrypted.
func waitRich(t testing.TB, sk *sink, n int) []richItem {
	t.Helper()
	return richItems(t, sk.waitItems(t, n, deliveryWithin))
}

func pairsOf(items []richItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.pair()
	}
	return out
}

// fetchJWKS reads GET /.well-known/jwks.json of s: the keys that sign
// validationTokens (decision 5).
func fetchJWKS(t testing.TB, s *server) map[string]*rsa.PublicKey {
	t.Helper()
	res, err := client.Get(s.base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("GET /.well-known/jwks.json: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /.well-known/jwks.json -> %d %s", res.StatusCode, raw)
	}
	var doc struct {
		Keys []struct{ Kty, Kid, N, E, Alg, Use string } `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v: %s", err, raw)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range doc.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("JWKS key %q: bad n or e", k.Kid)
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if len(out) == 0 {
		t.Fatalf("JWKS has no RSA key: %s", raw)
	}
	return out
}

// publisherAppID is the appid of every validationToken (section 4.7).
const publisherAppID = "0bf30f3b-4a52-48df-9a82-234910c4a086"

// verifyValidationToken checks a validationToken's RS256 signature against
// the JWKS of s and returns its claims, after checking exp/nbf against real
// time.
func verifyValidationToken(t testing.TB, s *server, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("validationToken %q is not a compact JWS", truncate(tok, 80))
	}
	dec := func(i int) []byte {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("validationToken part %d is not base64url: %v", i, err)
		}
		return b
	}
	var header, claims map[string]any
	if err := json.Unmarshal(dec(0), &header); err != nil {
		t.Fatalf("validationToken header: %v", err)
	}
	if err := json.Unmarshal(dec(1), &claims); err != nil {
		t.Fatalf("validationToken claims: %v", err)
	}
	if header["alg"] != "RS256" {
		t.Fatalf("validationToken alg = %v, want RS256", header["alg"])
	}
	keys := fetchJWKS(t, s)
	kid, _ := header["kid"].(string)
	pub := keys[kid]
	if pub == nil {
		t.Fatalf("validationToken kid %q is not in GET /.well-known/jwks.json", kid)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], dec(2)); err != nil {
		t.Fatalf("validationToken signature does not verify with the JWKS key: %v", err)
	}
	now := float64(time.Now().Unix())
	if exp, _ := claims["exp"].(float64); exp <= now {
		t.Errorf("validationToken exp %v is not in the future", claims["exp"])
	}
	if nbf, ok := claims["nbf"].(float64); ok && nbf > now+1 {
		t.Errorf("validationToken nbf %v is in the future", claims["nbf"])
	}
	return claims
}

// audIs reports whether a JWT aud claim (string or array) is app.
func audIs(aud any, app string) bool {
	switch a := aud.(type) {
	case string:
		return a == app
	case []any:
		return len(a) == 1 && a[0] == app
	}
	return false
}

// ---------------------------------------------------------------------------
// Generic

// keysOf returns the sorted keys of a JSON object.
func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// parseGraphTime parses a Graph instant, failing the test otherwise.
func parseGraphTime(t testing.TB, what, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %q is not an ISO 8601 instant: %v", what, s, err)
	}
	return v
}

// sameInstant compares instants to Graph's precision (100 ns).
func sameInstant(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Microsecond && d < time.Microsecond
}
