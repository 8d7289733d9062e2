// Package notify delivers Microsoft Graph change notifications for presence
// to subscribers' webhooks. For rich notifications (includeResourceData) it
// encrypts each item's resource data with the subscriber's certificate, and
// signs validationTokens with presenced's own key.
package notify

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits of an encryptionCertificate.
const (
	// MinCertificateKeyBits and MaxCertificateKeyBits bound the size of the
	// RSA key in an encryptionCertificate, as Graph does.
	MinCertificateKeyBits = 2048
	MaxCertificateKeyBits = 4096
	// maxCertificateLen bounds the encoded certificate we are willing to
	// parse; real ones are 1-2 KiB.
	maxCertificateLen = 64 << 10
)

// ErrBadCertificate is the error, possibly wrapped, of an encryptionCertificate
// that cannot be used. Its message is Graph's own for this case, so a handler
// that finds it with errors.Is can answer 400 with ErrBadCertificate.Error()
// as the message; the wrapping error says what was wrong, for the log.
//
//lint:ignore ST1005 Graph's wording, capitals and full stop included.
var ErrBadCertificate = errors.New("Certificate validation error: Cannot find the requested object.")

// EncryptionCert is a subscriber's encryptionCertificate, parsed and checked.
type EncryptionCert struct {
	// PublicKey is the certificate's RSA key, of MinCertificateKeyBits to
	// MaxCertificateKeyBits bits.
	PublicKey *rsa.PublicKey
	// Thumbprint is the uppercase hex SHA-1 of the certificate's DER, as sent
	// in encryptionCertificateThumbprint.
	Thumbprint string
}

// ParseEncryptionCertificate parses a subscription's encryptionCertificate:
// the standard base64 (padded or not) of a DER X.509 certificate, or, for
// convenience, a PEM CERTIFICATE block. White space is ignored. The key must
// be RSA of MinCertificateKeyBits to MaxCertificateKeyBits bits. Every error
// wraps ErrBadCertificate.
func ParseEncryptionCertificate(b64 string) (*EncryptionCert, error) {
	if len(b64) > maxCertificateLen {
		return nil, badCert(fmt.Errorf("%d characters, more than %d", len(b64), maxCertificateLen))
	}
	s := strings.TrimSpace(b64)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil {
			return nil, badCert(errors.New("malformed PEM"))
		}
		if block.Type != "CERTIFICATE" {
			return nil, badCert(fmt.Errorf("PEM block %q, not CERTIFICATE", block.Type))
		}
		der = block.Bytes
	} else {
		s = strings.Map(dropSpace, s)
		enc := base64.RawStdEncoding
		if len(s)%4 == 0 {
			enc = base64.StdEncoding
		}
		var err error
		der, err = enc.DecodeString(s)
		if err != nil {
			return nil, badCert(fmt.Errorf("not base64: %w", err))
		}
	}
	if len(der) == 0 {
		return nil, badCert(errors.New("empty"))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, badCert(err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, badCert(fmt.Errorf("%s key, not RSA", cert.PublicKeyAlgorithm))
	}
	if bits := pub.N.BitLen(); bits < MinCertificateKeyBits || bits > MaxCertificateKeyBits {
		return nil, badCert(fmt.Errorf("RSA key of %d bits, not %d to %d",
			bits, MinCertificateKeyBits, MaxCertificateKeyBits))
	}
	// Wrap a key once now, so that a key the RSA code refuses (an even
	// modulus, say) is refused here rather than at every notification.
	if _, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, make([]byte, aesKeyLen), nil); err != nil {
		return nil, badCert(fmt.Errorf("unusable RSA key: %w", err))
	}
	sum := sha1.Sum(der)
	return &EncryptionCert{
		PublicKey:  pub,
		Thumbprint: strings.ToUpper(hex.EncodeToString(sum[:])),
	}, nil
}

// badCert wraps cause and ErrBadCertificate.
func badCert(cause error) error {
	return fmt.Errorf("notify: encryptionCertificate: %w (%w)", cause, ErrBadCertificate)
}

// dropSpace is a strings.Map function that removes ASCII white space.
func dropSpace(r rune) rune {
	switch r {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return -1
	}
	return r
}

// EncryptedContent is the encryptedContent of a rich notification item.
type EncryptedContent struct {
	// Data is the base64 of the AES-256-CBC ciphertext of the resource data.
	Data string `json:"data"`
	// DataSignature is the base64 of the HMAC-SHA256 of the raw ciphertext,
	// keyed with the AES key.
	DataSignature string `json:"dataSignature"`
	// DataKey is the base64 of the AES key, wrapped with RSA-OAEP (SHA-1,
	// MGF1-SHA-1, no label) for the subscriber's certificate.
	DataKey string `json:"dataKey"`
	// EncryptionCertificateID is the subscription's encryptionCertificateId.
	EncryptionCertificateID string `json:"encryptionCertificateId"`
	// EncryptionCertificateThumbprint is the certificate's Thumbprint.
	EncryptionCertificateThumbprint string `json:"encryptionCertificateThumbprint"`
}

// aesKeyLen is the length of the AES-256 key, which is also the HMAC key.
const aesKeyLen = 32

// Encrypt encrypts plaintext (the resource data, UTF-8 JSON) for cert as
// Graph does: a fresh random 32-byte key K read from random (nil means
// crypto/rand.Reader); AES-256-CBC with IV K[0:16] and PKCS #7 padding;
// HMAC-SHA256 of the ciphertext keyed with K; and K wrapped with RSA-OAEP
// (SHA-1, MGF1-SHA-1). certID is the subscription's encryptionCertificateId,
// copied into the result.
func Encrypt(cert *EncryptionCert, certID string, plaintext []byte, random io.Reader) (EncryptedContent, error) {
	if cert == nil || cert.PublicKey == nil {
		return EncryptedContent{}, errors.New("notify: encrypt: no certificate")
	}
	if random == nil {
		random = rand.Reader
	}
	key := make([]byte, aesKeyLen)
	defer clear(key)
	if _, err := io.ReadFull(random, key); err != nil {
		return EncryptedContent{}, fmt.Errorf("notify: encrypt: reading a key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return EncryptedContent{}, fmt.Errorf("notify: encrypt: %w", err)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	ciphertext := make([]byte, len(plaintext)+pad)
	copy(ciphertext, plaintext)
	for i := len(plaintext); i < len(ciphertext); i++ {
		ciphertext[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, key[:aes.BlockSize]).CryptBlocks(ciphertext, ciphertext)

	mac := hmac.New(sha256.New, key)
	mac.Write(ciphertext)

	wrapped, err := rsa.EncryptOAEP(sha1.New(), random, cert.PublicKey, key, nil)
	if err != nil {
		return EncryptedContent{}, fmt.Errorf("notify: encrypt: wrapping the key: %w", err)
	}
	return EncryptedContent{
		Data:                            base64.StdEncoding.EncodeToString(ciphertext),
		DataSignature:                   base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		DataKey:                         base64.StdEncoding.EncodeToString(wrapped),
		EncryptionCertificateID:         certID,
		EncryptionCertificateThumbprint: cert.Thumbprint,
	}, nil
}
