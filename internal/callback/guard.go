package callback

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// MaxURLLength is the longest callback URL ValidateURL accepts.
const MaxURLLength = 2048

// RefusedError is a callback target the SSRF guard refuses. Its message is the delivery's
// reason, e.g. "refused: 127.0.0.1 is a loopback address" or, for a hostname,
// "refused: 127.0.0.1 (localhost) is a loopback address".
type RefusedError struct {
	Addr  netip.Addr // the address as dialled or resolved
	Host  string     // the URL's hostname when it was not the address itself
	Class string     // what the address is, e.g. "a loopback address"
}

func (e *RefusedError) Error() string {
	s := "refused: " + e.Addr.String()
	if e.Host != "" && e.Host != e.Addr.String() {
		s += " (" + e.Host + ")"
	}
	return s + " is " + e.Class
}

// Guard decides which addresses a callback may connect to: global unicast addresses, and
// anything in its allowlist. The zero value and a nil *Guard allow no exceptions.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard returns a guard that also admits the addresses in allow (ParseCIDRs output).
// Cloud metadata addresses stay refused under a broader allowed prefix (allowing
// 169.254.0.0/16 does not open 169.254.169.254); only an entry for exactly that address
// (a /32 or /128) admits one.
func NewGuard(allow []netip.Prefix) *Guard {
	g := &Guard{allow: make([]netip.Prefix, 0, len(allow))}
	for _, p := range allow {
		g.allow = append(g.allow, normalizePrefix(p))
	}
	return g
}

// Allowlist returns the guard's allowed prefixes.
func (g *Guard) Allowlist() []netip.Prefix {
	if g == nil {
		return nil
	}
	return append([]netip.Prefix(nil), g.allow...)
}

// Check returns nil if a callback may connect to addr, or a *RefusedError saying what addr
// is. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged as the IPv4 address they are;
// NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses as the IPv4 address they embed.
func (g *Guard) Check(addr netip.Addr) error {
	if !addr.IsValid() {
		return &RefusedError{Addr: addr, Class: "not a valid address"}
	}
	a := addr.WithZone("").Unmap()
	if class := metadataClass(a); class != "" {
		if g.allowsExactly(a) {
			return nil
		}
		return &RefusedError{Addr: addr, Class: class}
	}
	if g.allows(a) {
		return nil
	}
	if class := classify(a); class != "" {
		return &RefusedError{Addr: addr, Class: class}
	}
	return nil
}

// Control is a net.Dialer ControlContext function: it checks the address a socket is about
// to connect to (always a resolved IP, after DNS) and stops the connect if the guard
// refuses it, so no packet leaves for a refused address. Any dialer can use it.
func (g *Guard) Control(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: a dial the guard cannot read is not made.
		return fmt.Errorf("refused: cannot parse %s address %q: %w", network, address, err)
	}
	return g.Check(ap.Addr())
}

// CheckURL is ValidateURL plus, when the host is an IP literal, Check: what an API can
// answer 400 for before accepting a callback URL. A hostname is checked when it is dialled.
func (g *Guard) CheckURL(raw string) (*url.URL, error) {
	u, err := ValidateURL(raw)
	if err != nil {
		return nil, err
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		if err := g.Check(a); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func (g *Guard) allows(a netip.Addr) bool {
	if g == nil {
		return false
	}
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (g *Guard) allowsExactly(a netip.Addr) bool {
	if g == nil {
		return false
	}
	for _, p := range g.allow {
		if p.IsSingleIP() && p.Addr() == a {
			return true
		}
	}
	return false
}

// ValidateURL checks a callback URL's shape: at most MaxURLLength bytes, http or https, a
// host, no userinfo, a valid port if one is given. It does not resolve the host.
func ValidateURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("invalid callback url: empty")
	}
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("invalid callback url: %d bytes (at most %d)", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid callback url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("invalid callback url: scheme %q (only http and https)", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, fmt.Errorf("invalid callback url: no host")
	}
	if u.User != nil {
		return nil, fmt.Errorf("invalid callback url: userinfo is not allowed")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("invalid callback url: port %q", p)
		}
	}
	if strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("invalid callback url: empty port")
	}
	return u, nil
}

// ParseCIDRs parses an allowlist such as LAMBDA_CALLBACK_ALLOW_CIDRS: CIDRs or single
// addresses separated by commas and/or spaces ("127.0.0.1/32, 10.0.0.0/8 fd00::/8"). An
// empty string is an empty list. A CIDR with host bits set ("10.1.2.3/8") is an error
// rather than silently widened.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	out := make([]netip.Prefix, 0, len(fields))
	for i, f := range fields {
		p, err := parseCIDR(f)
		if err != nil {
			return nil, fmt.Errorf("allowlist entry %d %q: %w", i+1, f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseCIDR(f string) (netip.Prefix, error) {
	if !strings.Contains(f, "/") {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR (like 10.0.0.0/8, fd00::/8 or 127.0.0.1)")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zones are not allowed")
		}
		return normalizePrefix(netip.PrefixFrom(a, a.BitLen())), nil
	}
	addr, bits, _ := strings.Cut(f, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", addr)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zones are not allowed")
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n < 0 || n > a.BitLen() || bits != strconv.Itoa(n) {
		return netip.Prefix{}, fmt.Errorf("prefix length %q is not 0–%d", bits, a.BitLen())
	}
	p := netip.PrefixFrom(a, n)
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits are set (did you mean %s, or %s/%d?)", m, a, a.BitLen())
	}
	return normalizePrefix(p), nil
}

// normalizePrefix turns an IPv4-mapped prefix (::ffff:10.0.0.0/104) into its IPv4 form, as
// Check compares unmapped addresses.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// metadata are the cloud instance metadata and host service addresses. Most are in ranges
// refused anyway; they are named so the reason says what they are, and so that allowing a
// range around one does not open it.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, DigitalOcean… IMDS
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata and credentials
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS Pod Identity agent
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS Pod Identity agent over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud metadata
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud (classic) metadata
	netip.MustParseAddr("168.63.129.16"),   // Azure WireServer (a public-range host address)
}

func metadataClass(a netip.Addr) string {
	for _, m := range metadata {
		if a == m {
			return "a cloud metadata address"
		}
	}
	return ""
}

type rangeClass struct {
	p     netip.Prefix
	class string
}

func ranges(class string, cidrs ...string) []rangeClass {
	r := make([]rangeClass, len(cidrs))
	for i, c := range cidrs {
		r[i] = rangeClass{netip.MustParsePrefix(c), class}
	}
	return r
}

// refused lists the special-purpose ranges (RFC 6890 and successors) in the order they are
// looked up; the first match names the class.
var refused = concat(
	ranges("an unspecified address", "0.0.0.0/32", "::/128"),
	ranges("a loopback address", "127.0.0.0/8", "::1/128"),
	ranges("a \"this network\" address", "0.0.0.0/8"),
	ranges("a private address (RFC 1918)", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
	ranges("a link-local address", "169.254.0.0/16", "fe80::/10"),
	ranges("a carrier-grade NAT address (100.64.0.0/10)", "100.64.0.0/10"),
	ranges("a unique local address (fc00::/7)", "fc00::/7"),
	ranges("a site-local address", "fec0::/10"),
	ranges("a multicast address", "224.0.0.0/4", "ff00::/8"),
	ranges("a broadcast address", "255.255.255.255/32"),
	ranges("a reserved address",
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"198.18.0.0/15",   // benchmarking
		"192.88.99.0/24",  // 6to4 relay anycast (deprecated)
		"240.0.0.0/4",     // reserved
		"::/96",           // IPv4-compatible (deprecated)
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard-only
		"2001::/32",       // Teredo
		"2001:10::/28",    // ORCHID
		"2001:20::/28",    // ORCHIDv2
		"2001:db8::/32",   // documentation
		"3fff::/20",       // documentation
	),
)

func concat(lists ...[]rangeClass) []rangeClass {
	var out []rangeClass
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	global6   = netip.MustParsePrefix("2000::/3")
)

// classify returns what a (unmapped, zoneless) address is if a callback may not reach it,
// or "" for a global unicast address.
func classify(a netip.Addr) string {
	for _, r := range refused {
		if r.p.Contains(a) {
			return r.class
		}
	}
	if a.Is4() {
		if !a.IsGlobalUnicast() {
			return "not a global unicast address"
		}
		return ""
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return embedded(netip.AddrFrom4([4]byte(b[12:16])), "NAT64")
	case sixToFour.Contains(a):
		return embedded(netip.AddrFrom4([4]byte(b[2:6])), "6to4")
	case !global6.Contains(a):
		return "not a global unicast address"
	}
	return ""
}

// embedded judges the IPv4 address inside a NAT64 or 6to4 address. The allowlist is not
// consulted for it: allowing 127.0.0.1 does not open 64:ff9b::7f00:1.
func embedded(v4 netip.Addr, via string) string {
	if class := metadataClass(v4); class != "" {
		return class + " (" + via + " for " + v4.String() + ")"
	}
	if class := classify(v4); class != "" {
		return class + " (" + via + " for " + v4.String() + ")"
	}
	return ""
}

// resolvedHost is the hostname to name in a RefusedError: "" for an IP literal.
func resolvedHost(host string) string {
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return host
}
