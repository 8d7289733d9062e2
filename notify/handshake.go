package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
)

// handshake validates a notification URL as Graph does: it POSTs
// ?validationToken={token} with an empty text/plain body, and the receiver
// must answer 200 with exactly the token, within the validation timeout.
func (n *Notifier) handshake(ctx context.Context, target string) error {
	var b [24]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	u, err := url.Parse(target)
	if err != nil {
		return invalid(msgValidation)
	}
	// The URL's own query string is kept as it is (order and encoding):
	// the token is appended to it.
	param := "validationToken=" + url.QueryEscape(token)
	if u.RawQuery == "" {
		u.RawQuery = param
	} else {
		u.RawQuery += "&" + param
	}

	ctx, cancel := context.WithTimeout(ctx, n.cfg.ValidationTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), http.NoBody)
	if err != nil {
		return invalid(msgValidation)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return n.handshakeFailed(ctx, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return n.handshakeFailed(ctx, target, err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != token {
		n.m.Handshakes.WithLabelValues("mismatch").Inc()
		return invalid(msgValidation)
	}
	n.m.Handshakes.WithLabelValues("ok").Inc()
	return nil
}

// handshakeFailed counts and answers a validation request that got no
// whole answer, err saying why: a timeout, or another failure.
func (n *Notifier) handshakeFailed(ctx context.Context, target string, err error) error {
	if refused := blockedError(target, err); refused != nil {
		n.m.Handshakes.WithLabelValues("refused").Inc()
		n.logger.InfoContext(ctx, "validation request refused", "url", target, "err", err)
		return refused
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		n.m.Handshakes.WithLabelValues("timeout").Inc()
		return invalid(msgTimeout)
	}
	n.m.Handshakes.WithLabelValues("failed").Inc()
	n.logger.InfoContext(ctx, "validation request failed", "url", target, "err", err)
	return invalid("%s %s", msgFailed, unreachable(target, err))
}

// msgFailed starts the answer to a validation request that got no answer
// at all: Graph's words, followed by the cause.
const msgFailed = "Subscription validation request failed."

// unreachable says in a sentence why a validation request to target got no
// answer, from the client's error: a name that did not resolve, a refused
// connection, an untrusted certificate, or else that the request failed.
func unreachable(target string, err error) string {
	host := target
	if u, perr := url.Parse(target); perr == nil && u.Host != "" {
		host = u.Host
	}
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &dns):
		return fmt.Sprintf("The host name '%s' of the notification URL did not resolve.", dns.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("The connection to '%s' was refused: nothing listens there.", host)
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalidCert), errors.As(err, &verify):
		return fmt.Sprintf("The TLS certificate of '%s' is not trusted (a private CA is added with --webhook-ca-file).", host)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Sprintf("The connection to '%s' closed before an answer.", host)
	}
	return fmt.Sprintf("The notification URL at '%s' could not be reached.", host)
}
