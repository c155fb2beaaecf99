// Package callback delivers signed completion callbacks (DESIGN.md §10): the signature
// scheme, the HTTP client that POSTs an envelope to a user's URL, the SSRF guard that
// decides which addresses that client may connect to, and the retry schedule. It imports
// nothing from the rest of the repository; the Temporal activity, the envelope's callback
// state, the API and the secrets' storage are built on it.
//
// # Signature
//
//	X-Lambda-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=…]
//
// The key is the whole secret string (whsec_…, from NewSecret). During the 24 h after a
// rotation the platform signs with both secrets, current first (SignAll with
// ActiveSecrets), so a receiver verifies with whichever one it holds: "the previous secret
// still verifies" needs nothing from receivers. Verify accepts several secrets and several
// v1 entries, compares in constant time and rejects a timestamp more than the tolerance
// (default 5 min) from its clock, so every attempt is signed afresh. Receiver examples in Python and Node are in testdata and
// README.md, and are run against Sign by the tests.
//
// # Delivery
//
// Client.Deliver makes one attempt: POST, Content-Type application/json, the signature, a
// User-Agent; http and https only; redirects not followed (a 3xx fails); at most 4 KiB of
// the response read, then the connection is closed; timeouts on connect (5 s), TLS (5 s)
// and the whole attempt (15 s); no proxy, whatever the environment says. 2xx is Delivered;
// 408, 429, 5xx and network errors are Retry; other 4xx (and 3xx) are Failed, not retried:
// the receiver has said the request itself is wrong (404 gone, 401/403 a secret mismatch,
// 400/422 a rejected body), and the same bytes will get the same answer for 24 h.
//
// # SSRF guard
//
// The guard runs where a connection is made: the client resolves the hostname, refuses the
// target if any address it resolves to is refused, dials only the checked IP literals, and
// its net.Dialer's ControlContext checks each again before connect(2), so neither DNS
// rebinding nor a second answer reaches an internal address. Refused: loopback, unspecified,
// RFC 1918, link-local, CGNAT, IPv6 ULA and site-local, multicast, broadcast, reserved and
// documentation ranges, cloud metadata addresses, and anything else that is not global
// unicast; IPv4-mapped IPv6 is judged as IPv4, NAT64 and 6to4 by the IPv4 address they
// embed. The allowlist (LAMBDA_CALLBACK_ALLOW_CIDRS, ParseCIDRs) admits ranges, except that
// a metadata address needs an entry for exactly itself.
package callback
