package callback

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the request header that carries the signature.
const SignatureHeader = "X-Lambda-Signature"

// SecretPrefix starts every secret NewSecret makes.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a signature's timestamp may be from the receiver's clock
// (either way) before Verify rejects it as a possible replay.
const DefaultTolerance = 5 * time.Minute

// RotationGrace is how long the previous secret keeps signing (and so verifying) after a
// rotation.
const RotationGrace = 24 * time.Hour

// Limits on what Verify parses: a header is a timestamp and one v1 entry per active secret,
// a few hundred bytes; anything much bigger is not ours.
const (
	maxHeaderLen  = 4096
	maxSignatures = 16
)

// Errors Verify returns, wrapped with detail; test with errors.Is.
var (
	ErrMalformedHeader   = errors.New("malformed signature header")
	ErrNoSecrets         = errors.New("no secrets to verify with")
	ErrSignatureMismatch = errors.New("no signature matches")
	ErrTimestamp         = errors.New("timestamp outside tolerance")
)

// NewSecret returns a fresh signing secret: SecretPrefix and 32 random bytes in unpadded
// base64url (49 characters in all). The whole string, prefix included, is the HMAC key, so
// a receiver uses it exactly as shown to the user: []byte(secret) here, secret.encode() in
// Python, the string itself in Node.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never returns an error (crypto/rand, Go ≥ 1.24)
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ActiveSecrets returns the secrets a delivery is signed with: the current one and, until
// RotationGrace after rotatedAt, the previous one. An empty previous is left out.
func ActiveSecrets(current, previous string, rotatedAt, now time.Time) [][]byte {
	s := [][]byte{[]byte(current)}
	if previous != "" && previous != current && now.Before(rotatedAt.Add(RotationGrace)) {
		s = append(s, []byte(previous))
	}
	return s
}

// Sign returns the X-Lambda-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	return SignAll([][]byte{secret}, t, body)
}

// SignAll signs body with every secret, one v1 entry each in the order given (current
// first): "t=<unix>,v1=<current>,v1=<previous>". The platform signs with both secrets during
// a rotation's grace period, so a receiver that still holds the previous secret and one
// that already holds the new one both verify, and neither needs to know about rotations.
func SignAll(secrets [][]byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.Grow(len("t=") + len(ts) + len(secrets)*(len(",v1=")+2*sha256.Size))
	b.WriteString("t=")
	b.WriteString(ts)
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s, ts, body)))
	}
	return b.String()
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks an X-Lambda-Signature header against the raw request body (the bytes as
// received, not re-encoded JSON). It succeeds when any v1 entry is the HMAC of any of
// secrets (so a receiver may hold the current and the previous secret across a rotation)
// and the timestamp is within tolerance of now in either direction (tolerance ≤ 0 means
// DefaultTolerance). Comparisons are constant-time. Entries of other schemes (v0=, v2=…)
// are ignored so that a later scheme can be added alongside v1. Errors wrap
// ErrMalformedHeader, ErrNoSecrets, ErrSignatureMismatch or ErrTimestamp.
func Verify(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return ErrNoSecrets
	}
	ts, sigs, err := parseHeader(header)
	if err != nil {
		return err
	}
	matched := false
	for _, s := range secrets {
		want := mac(s, ts, body)
		for _, sig := range sigs {
			// Both are sha256.Size bytes (parseHeader checks), so Equal is constant-time.
			if hmac.Equal(want, sig) {
				matched = true
			}
		}
	}
	if !matched {
		return fmt.Errorf("%w (%d signature(s), %d secret(s))", ErrSignatureMismatch, len(sigs), len(secrets))
	}
	// The signature is checked first: a genuine but stale delivery is reported as stale,
	// a forged one as not matching.
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	unix, _ := strconv.ParseInt(ts, 10, 64)
	sent := time.Unix(unix, 0)
	if d := now.Sub(sent); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now (tolerance %s)",
			ErrTimestamp, sent.UTC().Format(time.RFC3339), d.Round(time.Second), tolerance)
	}
	return nil
}

// parseHeader splits "t=…,v1=…[,v1=…]" into the timestamp (as sent, for the MAC) and the
// decoded v1 signatures.
func parseHeader(header string) (string, [][]byte, error) {
	if header == "" {
		return "", nil, fmt.Errorf("%w: empty", ErrMalformedHeader)
	}
	if len(header) > maxHeaderLen {
		return "", nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrMalformedHeader, len(header), maxHeaderLen)
	}
	var ts string
	var sigs [][]byte
	for item := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return "", nil, fmt.Errorf("%w: %q is not key=value", ErrMalformedHeader, item)
		}
		switch k {
		case "t":
			if ts != "" {
				return "", nil, fmt.Errorf("%w: more than one t=", ErrMalformedHeader)
			}
			if !digits(v) {
				return "", nil, fmt.Errorf("%w: t=%q is not unix seconds", ErrMalformedHeader, v)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return "", nil, fmt.Errorf("%w: v1 is not %d hex digits", ErrMalformedHeader, 2*sha256.Size)
			}
			if len(sigs) == maxSignatures {
				return "", nil, fmt.Errorf("%w: more than %d v1 entries", ErrMalformedHeader, maxSignatures)
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" {
		return "", nil, fmt.Errorf("%w: no t=", ErrMalformedHeader)
	}
	if len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: no v1=", ErrMalformedHeader)
	}
	return ts, sigs, nil
}

// digits reports whether s is 1–18 decimal digits (a unix time that fits in int64).
func digits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
