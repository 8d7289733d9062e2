package notify

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
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
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Keys are slow to generate, so each test binary makes each size once.
var (
	rsa2048 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsa1024 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) })
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// makeCert returns the DER of a certificate for pub, signed by signer.
func makeCert(tb testing.TB, serial int64, pub any, signer crypto.Signer) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "presenced notification receiver"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// receiverCert returns the DER of a self-signed certificate for rsa2048.
func receiverCert(tb testing.TB) []byte {
	return makeCert(tb, 1, &rsa2048().PublicKey, rsa2048())
}

// fakeModulus returns an odd number of exactly bits bits: an RSA modulus
// whose factors nobody knows, which is enough to test the size limits
// without generating large keys.
func fakeModulus(bits int) *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	return n.Add(n, big.NewInt(0x1_0001)) // odd
}

// receive decrypts ec as a subscriber would, with the standard library
// only: pick the certificate's key by id, unwrap the AES key, check the
// HMAC in constant time, decrypt, and unpad.
func receive(keys map[string]*rsa.PrivateKey, ec EncryptedContent) ([]byte, error) {
	priv, ok := keys[ec.EncryptionCertificateID]
	if !ok {
		return nil, fmt.Errorf("unknown certificate id %q", ec.EncryptionCertificateID)
	}
	wrapped, err := base64.StdEncoding.DecodeString(ec.DataKey)
	if err != nil {
		return nil, err
	}
	key, err := rsa.DecryptOAEP(sha1.New(), nil, priv, wrapped, nil)
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("key of %d bytes", len(key))
	}
	data, err := base64.StdEncoding.DecodeString(ec.Data)
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(ec.DataSignature)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	if !hmac.Equal(mac.Sum(nil), sig) {
		return nil, errors.New("dataSignature does not match")
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ciphertext of %d bytes", len(data))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, key[:aes.BlockSize]).CryptBlocks(plain, data)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize {
		return nil, fmt.Errorf("bad padding %d", pad)
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, errors.New("bad padding")
		}
	}
	return plain[:len(plain)-pad], nil
}

const presenceJSON = `{"@odata.id":"users/fa8bf3dc-eca7-46b7-bad1-db199b62afc3/presence",` +
	`"@odata.type":"#microsoft.graph.presence","id":"fa8bf3dc-eca7-46b7-bad1-db199b62afc3",` +
	`"availability":"Busy","activity":"InACall"}`

func TestEncryptRoundTrip(t *testing.T) {
	der := receiverCert(t)
	cert, err := ParseEncryptionCertificate(base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*rsa.PrivateKey{"my-cert-2026-01": rsa2048()}
	// Lengths around the block size: padding is always 1 to 16 bytes.
	for _, plain := range []string{presenceJSON, "", "x", strings.Repeat("a", 15),
		strings.Repeat("a", 16), strings.Repeat("a", 17), strings.Repeat("é", 1000)} {
		ec, err := Encrypt(cert, "my-cert-2026-01", []byte(plain), nil)
		if err != nil {
			t.Fatal(err)
		}
		if ec.EncryptionCertificateID != "my-cert-2026-01" {
			t.Errorf("encryptionCertificateId = %q", ec.EncryptionCertificateID)
		}
		if ec.EncryptionCertificateThumbprint != cert.Thumbprint {
			t.Errorf("encryptionCertificateThumbprint = %q, want %q",
				ec.EncryptionCertificateThumbprint, cert.Thumbprint)
		}
		got, err := receive(keys, ec)
		if err != nil {
			t.Fatalf("len %d: %v", len(plain), err)
		}
		if string(got) != plain {
			t.Errorf("decrypted %q, want %q", got, plain)
		}
	}
}

func TestEncryptedContentJSON(t *testing.T) {
	ec := EncryptedContent{Data: "d", DataSignature: "s", DataKey: "k",
		EncryptionCertificateID: "i", EncryptionCertificateThumbprint: "t"}
	b, err := json.Marshal(ec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"data":"d","dataSignature":"s","dataKey":"k",` +
		`"encryptionCertificateId":"i","encryptionCertificateThumbprint":"t"}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
}

// TestEncryptKnownAnswer pins data and dataSignature for a fixed key to
// values computed with OpenSSL:
//
//	K=000102...1f
//	printf %s "$P" | openssl enc -aes-256-cbc -K $K -iv ${K:0:32} | base64
//	printf %s "$P" | openssl enc -aes-256-cbc -K $K -iv ${K:0:32} |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:$K -binary | base64
func TestEncryptKnownAnswer(t *testing.T) {
	cert, err := ParseEncryptionCertificate(base64.StdEncoding.EncodeToString(receiverCert(t)))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	plain := `{"availability":"Busy","activity":"InACall"}`
	ec, err := Encrypt(cert, "c", []byte(plain), bytes.NewReader(append(key, make([]byte, 1024)...)))
	if err != nil {
		t.Fatal(err)
	}
	const wantData = "QB/CsQP+H0gKXQuYnhd0oL6aCvaysEDMXRbCHW41TG4F4ApSx68m04SBuAoCGpSq"
	const wantSig = "TUg85EA2w+scE7zk759+TmMyHtnSWwfuKqV4r+DDVWE="
	if ec.Data != wantData {
		t.Errorf("data = %s, want %s", ec.Data, wantData)
	}
	if ec.DataSignature != wantSig {
		t.Errorf("dataSignature = %s, want %s", ec.DataSignature, wantSig)
	}
	got, err := rsa.DecryptOAEP(sha1.New(), nil, rsa2048(), mustB64(t, ec.DataKey), nil)
	if err != nil || !bytes.Equal(got, key) {
		t.Errorf("dataKey unwraps to %x, %v; want %x", got, err, key)
	}
}

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestEncryptFreshKey(t *testing.T) {
	cert, err := ParseEncryptionCertificate(base64.StdEncoding.EncodeToString(receiverCert(t)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Encrypt(cert, "c", []byte(presenceJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encrypt(cert, "c", []byte(presenceJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Data == b.Data || a.DataSignature == b.DataSignature || a.DataKey == b.DataKey {
		t.Errorf("two encryptions share a field:\n%+v\n%+v", a, b)
	}
}

func TestEncryptTamperDetected(t *testing.T) {
	cert, err := ParseEncryptionCertificate(base64.StdEncoding.EncodeToString(receiverCert(t)))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*rsa.PrivateKey{"c": rsa2048()}
	ec, err := Encrypt(cert, "c", []byte(presenceJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Encrypt(cert, "c", []byte(presenceJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := mustB64(t, s)
		b[(i+len(b))%len(b)] ^= 0x01
		return base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		name   string
		tamper func(*EncryptedContent)
	}{
		{"first data byte", func(e *EncryptedContent) { e.Data = flip(e.Data, 0) }},
		{"last data byte", func(e *EncryptedContent) { e.Data = flip(e.Data, -1) }},
		{"data truncated", func(e *EncryptedContent) {
			b := mustB64(t, e.Data)
			e.Data = base64.StdEncoding.EncodeToString(b[:len(b)-aes.BlockSize])
		}},
		{"data from another item", func(e *EncryptedContent) { e.Data = other.Data }},
		{"signature bit", func(e *EncryptedContent) { e.DataSignature = flip(e.DataSignature, 7) }},
		{"signature from another item", func(e *EncryptedContent) { e.DataSignature = other.DataSignature }},
		{"key from another item", func(e *EncryptedContent) { e.DataKey = other.DataKey }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ec
			tt.tamper(&e)
			if got, err := receive(keys, e); err == nil {
				t.Errorf("tampered content decrypted to %q", got)
			}
		})
	}
}

func TestEncryptNoCertificate(t *testing.T) {
	if _, err := Encrypt(nil, "c", []byte("{}"), nil); err == nil {
		t.Error("Encrypt(nil cert) succeeded")
	}
	if _, err := Encrypt(&EncryptionCert{}, "c", []byte("{}"), nil); err == nil {
		t.Error("Encrypt(empty cert) succeeded")
	}
	cert, err := ParseEncryptionCertificate(base64.StdEncoding.EncodeToString(receiverCert(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Encrypt(cert, "c", []byte("{}"), bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("Encrypt with a short random reader succeeded")
	}
}

func TestParseEncryptionCertificateEncodings(t *testing.T) {
	// A DER whose length is not a multiple of 3, so that padding matters.
	var der []byte
	for serial := int64(1); ; serial++ {
		der = makeCert(t, serial, &rsa2048().PublicKey, rsa2048())
		if len(der)%3 != 0 {
			break
		}
	}
	std := base64.StdEncoding.EncodeToString(der)
	var wrapped strings.Builder
	for s := std; s != ""; {
		n := min(76, len(s))
		wrapped.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	sum := sha1.Sum(der)
	want := strings.ToUpper(hex.EncodeToString(sum[:]))

	for name, in := range map[string]string{
		"padded":            std,
		"unpadded":          strings.TrimRight(std, "="),
		"line-wrapped":      wrapped.String(),
		"surrounding space": "  " + std + "\n",
		"PEM":               pemText,
		"PEM with space":    "\n" + pemText + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			cert, err := ParseEncryptionCertificate(in)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Thumbprint != want {
				t.Errorf("thumbprint %s, want %s", cert.Thumbprint, want)
			}
			if cert.PublicKey.N.Cmp(rsa2048().N) != 0 {
				t.Error("wrong public key")
			}
		})
	}
}

func TestThumbprint(t *testing.T) {
	der := receiverCert(t)
	cert, err := ParseEncryptionCertificate(base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9A-F]{40}$`).MatchString(cert.Thumbprint) {
		t.Errorf("thumbprint %q is not 40 uppercase hex digits", cert.Thumbprint)
	}
	sum := sha1.Sum(der)
	if got, _ := hex.DecodeString(cert.Thumbprint); !bytes.Equal(got, sum[:]) {
		t.Errorf("thumbprint %s is not the SHA-1 of the DER, %x", cert.Thumbprint, sum)
	}
}

func TestParseEncryptionCertificateBad(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(der []byte) string { return base64.StdEncoding.EncodeToString(der) }
	good := receiverCert(t)
	evenModulus := fakeModulus(2048)
	evenModulus.SetBit(evenModulus, 0, 0)

	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"space", "  \n"},
		{"not base64", "not a certificate!"},
		{"URL-safe base64", strings.NewReplacer("+", "-", "/", "_").Replace(b64(good)) + "-_"},
		{"bad padding", b64(good) + "="},
		{"not a certificate", b64([]byte("hello, world"))},
		{"truncated certificate", b64(good[:len(good)-10])},
		{"trailing bytes", b64(append(append([]byte(nil), good...), 0))},
		{"EC key", b64(makeCert(t, 2, &ecKey.PublicKey, ecKey))},
		{"RSA 1024", b64(makeCert(t, 3, &rsa1024().PublicKey, rsa1024()))},
		{"RSA 2047", b64(makeCert(t, 4, &rsa.PublicKey{N: fakeModulus(2047), E: 65537}, rsa2048()))},
		{"RSA 4097", b64(makeCert(t, 5, &rsa.PublicKey{N: fakeModulus(4097), E: 65537}, rsa2048()))},
		{"RSA 8192", b64(makeCert(t, 6, &rsa.PublicKey{N: fakeModulus(8192), E: 65537}, rsa2048()))},
		{"even modulus", b64(makeCert(t, 7, &rsa.PublicKey{N: evenModulus, E: 65537}, rsa2048()))},
		{"PEM private key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: good}))},
		{"PEM garbage", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"},
		{"too long", strings.Repeat("A", maxCertificateLen+4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := ParseEncryptionCertificate(tt.in)
			if err == nil {
				t.Fatalf("accepted, key of %d bits", cert.PublicKey.N.BitLen())
			}
			if !errors.Is(err, ErrBadCertificate) {
				t.Errorf("error %v does not wrap ErrBadCertificate", err)
			}
		})
	}
	const graph = "Certificate validation error: Cannot find the requested object."
	if ErrBadCertificate.Error() != graph {
		t.Errorf("ErrBadCertificate says %q, want Graph's %q", ErrBadCertificate, graph)
	}
}

func TestParseEncryptionCertificateSizeLimits(t *testing.T) {
	for _, bits := range []int{MinCertificateKeyBits, MaxCertificateKeyBits} {
		pub := &rsa.PublicKey{N: fakeModulus(bits), E: 65537}
		in := base64.StdEncoding.EncodeToString(makeCert(t, 1, pub, rsa2048()))
		cert, err := ParseEncryptionCertificate(in)
		if err != nil {
			t.Errorf("%d bits: %v", bits, err)
			continue
		}
		if _, err := Encrypt(cert, "c", []byte("{}"), nil); err != nil {
			t.Errorf("%d bits: Encrypt: %v", bits, err)
		}
	}
}

func FuzzParseEncryptionCertificate(f *testing.F) {
	der := makeCert(f, 1, &rsa2048().PublicKey, rsa2048())
	std := base64.StdEncoding.EncodeToString(der)
	f.Add(std)
	f.Add(strings.TrimRight(std, "="))
	f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	f.Add(std[:len(std)/2])
	f.Add("")
	f.Add("====")
	f.Add("-----BEGIN CERTIFICATE-----\n")
	f.Add("MIIB")
	f.Fuzz(func(t *testing.T, in string) {
		cert, err := ParseEncryptionCertificate(in)
		if err != nil {
			if !errors.Is(err, ErrBadCertificate) {
				t.Fatalf("error %v does not wrap ErrBadCertificate", err)
			}
			return
		}
		if bits := cert.PublicKey.N.BitLen(); bits < MinCertificateKeyBits || bits > MaxCertificateKeyBits {
			t.Fatalf("accepted a key of %d bits", bits)
		}
		if len(cert.Thumbprint) != 40 || strings.ToUpper(cert.Thumbprint) != cert.Thumbprint {
			t.Fatalf("thumbprint %q", cert.Thumbprint)
		}
	})
}
