package notify

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// BlockedAddressError is the error of a connection to a notification or
// lifecycle URL that GuardTransport refused: the address dialled is one
// presenced does not call (a loopback, private, link-local, ... address),
// so that a subscriber cannot make presenced reach hosts inside its own
// network.
type BlockedAddressError struct {
	Addr netip.Addr
	// Kind says what the address is: "loopback", "private", ...
	Kind string
}

func (e *BlockedAddressError) Error() string {
	return fmt.Sprintf("refused to call %s: a %s address", e.Addr, e.Kind)
}

// nonPublic are the IPv4 ranges refused beyond those netip classifies.
var nonPublic = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},    // "this network"
	{netip.MustParsePrefix("100.64.0.0/10"), "private"},    // shared address space (carrier-grade NAT)
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},    // IETF protocol assignments
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved"},   // benchmarking
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},     // reserved, and the broadcast address
	{netip.MustParsePrefix("::/96"), "reserved"},           // IPv4-compatible IPv6 (deprecated)
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},       // checked on the IPv4 address it embeds
	{netip.MustParsePrefix("64:ff9b:1::/48"), "reserved"},  // local-use NAT64
	{netip.MustParsePrefix("2002::/16"), "6to4"},           // checked on the IPv4 address it embeds
	{netip.MustParsePrefix("100::/64"), "reserved"},        // discard-only
	{netip.MustParsePrefix("2001:db8::/32"), "reserved"},   // documentation
	{netip.MustParsePrefix("192.0.2.0/24"), "reserved"},    // documentation
	{netip.MustParsePrefix("198.51.100.0/24"), "reserved"}, // documentation
	{netip.MustParsePrefix("203.0.113.0/24"), "reserved"},  // documentation
}

// AddressKind returns what makes addr one that presenced refuses to call
// ("loopback", "private", "link-local", "unspecified", "multicast",
// "reserved"), or "" for a public address. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d), and NAT64 and 6to4 ones, are judged by the IPv4
// address inside them.
func AddressKind(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "invalid"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "private"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, r := range nonPublic {
		if !r.prefix.Contains(addr) {
			continue
		}
		b := addr.As16()
		switch r.kind {
		case "NAT64":
			return AddressKind(netip.AddrFrom4([4]byte(b[12:16])))
		case "6to4":
			return AddressKind(netip.AddrFrom4([4]byte(b[2:6])))
		}
		return r.kind
	}
	return ""
}

// guardControl is a net.Dialer Control: it runs on the address actually
// about to be dialled, after name resolution, so a name cannot resolve to
// a public address when checked and a private one when dialled.
func guardControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to call %q: not an IP address and port", address)
	}
	if kind := AddressKind(ap.Addr()); kind != "" {
		return &BlockedAddressError{Addr: ap.Addr(), Kind: kind}
	}
	return nil
}

// GuardTransport makes tr refuse to connect to any address AddressKind
// names, checked on every connection it opens (the validation handshakes
// and every delivery), and turns off proxies (a proxy would connect on
// its behalf, unchecked). Use it on the transport of Config.Client, and
// keep that client from following redirects.
func GuardTransport(tr *http.Transport) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: guardControl}
	tr.DialContext = d.DialContext
	tr.DialTLSContext = nil
	tr.Proxy = nil
}

// blockedError answers a validation request refused by GuardTransport with
// a 400 that says why, or returns nil when err is not such a refusal.
func blockedError(target string, err error) error {
	var be *BlockedAddressError
	if !errors.As(err, &be) {
		return nil
	}
	return invalid("The URL '%s' resolves to %s, a %s address; presenced does not call loopback, private, link-local, unspecified, multicast or reserved addresses.", target, be.Addr, be.Kind)
}
