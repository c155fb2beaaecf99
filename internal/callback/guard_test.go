package callback

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGuardClassifiesAddresses(t *testing.T) {
	t.Parallel()
	g := NewGuard(nil)
	for addr, want := range map[string]string{
		// allowed: global unicast
		"8.8.8.8":              "",
		"1.1.1.1":              "",
		"93.184.216.34":        "",
		"2606:4700:4700::1111": "",
		"2a00:1450:4001::200e": "",
		"64:ff9b::808:808":     "", // NAT64 of 8.8.8.8
		"2002:808:808::1":      "", // 6to4 of 8.8.8.8
		// refused
		"127.0.0.1":              "refused: 127.0.0.1 is a loopback address",
		"127.1.2.3":              "refused: 127.1.2.3 is a loopback address",
		"::1":                    "refused: ::1 is a loopback address",
		"::ffff:127.0.0.1":       "refused: ::ffff:127.0.0.1 is a loopback address",
		"0.0.0.0":                "refused: 0.0.0.0 is an unspecified address",
		"::":                     "refused: :: is an unspecified address",
		"0.1.2.3":                `refused: 0.1.2.3 is a "this network" address`,
		"10.0.0.1":               "refused: 10.0.0.1 is a private address (RFC 1918)",
		"172.16.0.1":             "refused: 172.16.0.1 is a private address (RFC 1918)",
		"172.31.255.255":         "refused: 172.31.255.255 is a private address (RFC 1918)",
		"192.168.1.1":            "refused: 192.168.1.1 is a private address (RFC 1918)",
		"::ffff:10.1.2.3":        "refused: ::ffff:10.1.2.3 is a private address (RFC 1918)",
		"169.254.1.1":            "refused: 169.254.1.1 is a link-local address",
		"fe80::1":                "refused: fe80::1 is a link-local address",
		"fe80::1%eth0":           "refused: fe80::1%eth0 is a link-local address",
		"169.254.169.254":        "refused: 169.254.169.254 is a cloud metadata address",
		"::ffff:169.254.169.254": "refused: ::ffff:169.254.169.254 is a cloud metadata address",
		"169.254.170.2":          "refused: 169.254.170.2 is a cloud metadata address",
		"fd00:ec2::254":          "refused: fd00:ec2::254 is a cloud metadata address",
		"100.100.100.200":        "refused: 100.100.100.200 is a cloud metadata address",
		"168.63.129.16":          "refused: 168.63.129.16 is a cloud metadata address",
		"100.64.0.1":             "refused: 100.64.0.1 is a carrier-grade NAT address (100.64.0.0/10)",
		"100.127.255.254":        "refused: 100.127.255.254 is a carrier-grade NAT address (100.64.0.0/10)",
		"fc00::1":                "refused: fc00::1 is a unique local address (fc00::/7)",
		"fd12:3456::1":           "refused: fd12:3456::1 is a unique local address (fc00::/7)",
		"fec0::1":                "refused: fec0::1 is a site-local address",
		"224.0.0.1":              "refused: 224.0.0.1 is a multicast address",
		"239.255.255.250":        "refused: 239.255.255.250 is a multicast address",
		"ff02::1":                "refused: ff02::1 is a multicast address",
		"255.255.255.255":        "refused: 255.255.255.255 is a broadcast address",
		"240.0.0.1":              "refused: 240.0.0.1 is a reserved address",
		"192.0.2.1":              "refused: 192.0.2.1 is a reserved address",
		"198.18.0.1":             "refused: 198.18.0.1 is a reserved address",
		"2001:db8::1":            "refused: 2001:db8::1 is a reserved address",
		"2001::1":                "refused: 2001::1 is a reserved address",
		"::7f00:1":               "refused: ::7f00:1 is a reserved address",
		"64:ff9b::7f00:1":        "refused: 64:ff9b::7f00:1 is a loopback address (NAT64 for 127.0.0.1)",
		"64:ff9b::a9fe:a9fe":     "refused: 64:ff9b::a9fe:a9fe is a cloud metadata address (NAT64 for 169.254.169.254)",
		"2002:a00:1::1":          "refused: 2002:a00:1::1 is a private address (RFC 1918) (6to4 for 10.0.0.1)",
		"4000::1":                "refused: 4000::1 is not a global unicast address",
	} {
		err := g.Check(netip.MustParseAddr(addr))
		if want == "" {
			require.NoError(t, err, addr)
			continue
		}
		require.EqualError(t, err, want, addr)
		var refused *RefusedError
		require.ErrorAs(t, err, &refused)
	}
	require.Error(t, g.Check(netip.Addr{}))
	var nilGuard *Guard
	require.Error(t, nilGuard.Check(netip.MustParseAddr("127.0.0.1")))
	require.NoError(t, nilGuard.Check(netip.MustParseAddr("8.8.8.8")))
}

func TestGuardAllowlist(t *testing.T) {
	t.Parallel()
	allow, err := ParseCIDRs("127.0.0.0/8, ::1 ::ffff:10.9.0.0/112,169.254.0.0/16 100.100.100.200")
	require.NoError(t, err)
	g := NewGuard(allow)
	for _, a := range []string{"127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "::1", "10.9.1.2", "169.254.1.1", "100.100.100.200"} {
		require.NoError(t, g.Check(netip.MustParseAddr(a)), a)
	}
	for a, want := range map[string]string{
		"10.0.0.1":        "private",
		"10.10.0.1":       "private",
		"169.254.169.254": "metadata", // a broader allowed range does not open a metadata address
		"fd00:ec2::254":   "metadata",
		"64:ff9b::7f00:1": "loopback", // the allowlist is not applied to an embedded address
		"192.168.0.1":     "private",
	} {
		require.ErrorContains(t, g.Check(netip.MustParseAddr(a)), want, a)
	}
	exact, err := ParseCIDRs("169.254.169.254/32")
	require.NoError(t, err)
	require.NoError(t, NewGuard(exact).Check(netip.MustParseAddr("169.254.169.254")))
	require.Equal(t, allow[0], netip.MustParsePrefix("127.0.0.0/8"))
	require.Equal(t, netip.MustParsePrefix("10.9.0.0/16"), g.Allowlist()[2])
}

func TestParseCIDRs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"":                                  {},
		"  ,, ":                             {},
		"127.0.0.1":                         {"127.0.0.1/32"},
		"10.0.0.0/8,fd00::/8":               {"10.0.0.0/8", "fd00::/8"},
		"10.0.0.0/8 \n 192.168.0.0/16\t::1": {"10.0.0.0/8", "192.168.0.0/16", "::1/128"},
		"0.0.0.0/0":                         {"0.0.0.0/0"},
	} {
		got, err := ParseCIDRs(in)
		require.NoError(t, err, in)
		require.Len(t, got, len(want), in)
		for i := range want {
			require.Equal(t, want[i], got[i].String(), in)
		}
	}
	for in, want := range map[string]string{
		"10.0.0.0/33":            `allowlist entry 1 "10.0.0.0/33": prefix length "33" is not 0–32`,
		"10.0.0.0/8,fd00::/129":  `allowlist entry 2 "fd00::/129": prefix length "129" is not 0–128`,
		"10.1.2.3/8":             `allowlist entry 1 "10.1.2.3/8": host bits are set (did you mean 10.0.0.0/8, or 10.1.2.3/32?)`,
		"example.com":            `allowlist entry 1 "example.com": not an IP address or CIDR (like 10.0.0.0/8, fd00::/8 or 127.0.0.1)`,
		"10.0.0/8":               `allowlist entry 1 "10.0.0/8": "10.0.0" is not an IP address`,
		"10.0.0.0/":              `allowlist entry 1 "10.0.0.0/": prefix length "" is not 0–32`,
		"10.0.0.0/08":            `allowlist entry 1 "10.0.0.0/08": prefix length "08" is not 0–32`,
		"127.0.0.1 fe80::1%eth0": `allowlist entry 2 "fe80::1%eth0": zones are not allowed`,
	} {
		_, err := ParseCIDRs(in)
		require.EqualError(t, err, want, in)
	}
}

func TestValidateURL(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{
		"https://example.com/hook",
		"http://example.com:8080/hook?x=1",
		"HTTPS://Example.com/",
		"http://[2001:db8::1]:9000/",
		"http://10.0.0.1/", // shape only; the guard refuses it at connect time
	} {
		_, err := ValidateURL(ok)
		require.NoError(t, err, ok)
	}
	long := "https://example.com/" + string(make([]byte, MaxURLLength))
	for in, want := range map[string]string{
		"":                             "empty",
		"ftp://example.com/":           `scheme "ftp"`,
		"file:///etc/passwd":           `scheme "file"`,
		"gopher://example.com":         `scheme "gopher"`,
		"example.com/hook":             `scheme ""`,
		"//example.com/hook":           `scheme ""`,
		"https://":                     "no host",
		"https:example.com":            "no host",
		"https://:443/":                "no host",
		"https://user:pw@example.com/": "userinfo is not allowed",
		"https://user@example.com/":    "userinfo is not allowed",
		"https://example.com:0/":       `port "0"`,
		"https://example.com:99999/":   `port "99999"`,
		"https://example.com:/":        "empty port",
		"https://exa mple.com/":        "invalid callback url",
		"http://example.com/\x00":      "invalid callback url",
		long:                           "bytes (at most 2048)",
	} {
		_, err := ValidateURL(in)
		require.ErrorContains(t, err, want, in)
		require.ErrorContains(t, err, "invalid callback url", in)
	}
}

func TestGuardCheckURLRefusesLiteralAddressesEarly(t *testing.T) {
	t.Parallel()
	g := NewGuard(nil)
	_, err := g.CheckURL("http://169.254.169.254/latest/meta-data/")
	require.EqualError(t, err, "refused: 169.254.169.254 is a cloud metadata address")
	_, err = g.CheckURL("http://[::1]:8080/")
	require.EqualError(t, err, "refused: ::1 is a loopback address")
	_, err = g.CheckURL("ftp://example.com/")
	require.ErrorContains(t, err, "scheme")
	u, err := g.CheckURL("https://example.com/hook")
	require.NoError(t, err)
	require.Equal(t, "example.com", u.Hostname())
	// A hostname is left for connect time.
	_, err = g.CheckURL("http://localhost:8080/")
	require.NoError(t, err)
}

// The guard's Control stops a dialer before connect(2): the listener never sees a
// connection. The same dial with the address allowed connects, so the count is live.
func TestGuardControlStopsTheConnect(t *testing.T) {
	t.Parallel()
	ln := listenCounting(t, "tcp", "127.0.0.1:0")

	d := net.Dialer{ControlContext: NewGuard(nil).Control}
	_, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	require.Equal(t, "refused: 127.0.0.1 is a loopback address", refused.Error())

	// The dialer resolves "localhost" itself; Control still sees each resolved address.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_, err = d.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	require.ErrorAs(t, err, &refused)
	require.Zero(t, ln.settledAccepts(t), "a refused dial reached the listener")

	before := ln.accepts.Load() // the sentinel
	allowed := net.Dialer{ControlContext: NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}).Control}
	conn, err := allowed.DialContext(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	conn.Close()
	require.Eventually(t, func() bool { return ln.accepts.Load() == before+1 }, waitFor, tick)

	require.ErrorContains(t, NewGuard(nil).Control(context.Background(), "tcp", "not-an-address", nil), "refused: cannot parse")
}
