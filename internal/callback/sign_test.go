package callback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	t0   = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	body = []byte(`{"id":"exec-1","status":"succeeded","output":{"n":42}}`)
)

func TestSignFormatIsTheDocumentedHMAC(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_example")
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("1767225600." + string(body)))
	want := "t=1767225600,v1=" + hex.EncodeToString(h.Sum(nil))
	require.Equal(t, want, Sign(secret, t0, body))
	require.Regexp(t, `^t=\d+,v1=[0-9a-f]{64}$`, Sign(secret, t0, body))
	// Sub-second precision is dropped, not rounded.
	require.Equal(t, want, Sign(secret, t0.Add(999*time.Millisecond), body))
}

func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	secret := []byte(NewSecret())
	header := Sign(secret, t0, body)
	require.NoError(t, Verify(header, body, [][]byte{secret}, t0, 0))
	require.NoError(t, Verify(header, body, [][]byte{secret}, t0.Add(DefaultTolerance), 0))
	// Spaces after the commas are tolerated; unknown schemes are ignored.
	spaced := strings.ReplaceAll(header, ",", ", ") + ", v0=abc, v2=" + strings.Repeat("0", 64)
	require.NoError(t, Verify(spaced, body, [][]byte{secret}, t0, 0))
}

func TestVerifyRejectsTampering(t *testing.T) {
	t.Parallel()
	secret := []byte(NewSecret())
	header := Sign(secret, t0, body)
	sig := header[strings.Index(header, "v1=")+3:]
	otherSig := hex.EncodeToString(func() []byte { b, _ := hex.DecodeString(sig); b[0] ^= 0x80; return b }())

	cases := map[string]struct {
		header  string
		body    []byte
		secrets [][]byte
	}{
		"body changed":           {header, []byte(strings.Replace(string(body), "42", "43", 1)), [][]byte{secret}},
		"body extended":          {header, append(append([]byte{}, body...), ' '), [][]byte{secret}},
		"timestamp changed":      {strings.Replace(header, "t=1767225600", "t=1767225601", 1), body, [][]byte{secret}},
		"signature changed":      {"t=1767225600,v1=" + otherSig, body, [][]byte{secret}},
		"wrong secret":           {header, body, [][]byte{[]byte(NewSecret())}},
		"secret without prefix":  {header, body, [][]byte{[]byte(strings.TrimPrefix(string(secret), SecretPrefix))}},
		"signature of other key": {Sign([]byte(NewSecret()), t0, body), body, [][]byte{secret}},
	}
	for name, c := range cases {
		err := Verify(c.header, c.body, c.secrets, t0, 0)
		require.ErrorIs(t, err, ErrSignatureMismatch, name)
	}
}

func TestRotationBothSecretsSignAndEitherVerifies(t *testing.T) {
	t.Parallel()
	old, cur := NewSecret(), NewSecret()
	rotatedAt := t0.Add(-time.Hour)

	secrets := ActiveSecrets(cur, old, rotatedAt, t0)
	require.Equal(t, [][]byte{[]byte(cur), []byte(old)}, secrets)
	header := SignAll(secrets, t0, body)
	require.Regexp(t, `^t=1767225600,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$`, header)

	// A receiver that has not picked up the new secret still verifies, and so does one
	// that has, and one holding both.
	require.NoError(t, Verify(header, body, [][]byte{[]byte(old)}, t0, 0))
	require.NoError(t, Verify(header, body, [][]byte{[]byte(cur)}, t0, 0))
	require.NoError(t, Verify(header, body, [][]byte{[]byte(cur), []byte(old)}, t0, 0))
	// A receiver holding both secrets verifies a sender that signs with either one.
	require.NoError(t, Verify(Sign([]byte(old), t0, body), body, [][]byte{[]byte(cur), []byte(old)}, t0, 0))

	// After the grace period only the current secret signs; the old one no longer verifies.
	later := rotatedAt.Add(RotationGrace)
	secrets = ActiveSecrets(cur, old, rotatedAt, later)
	require.Equal(t, [][]byte{[]byte(cur)}, secrets)
	header = SignAll(secrets, later, body)
	require.ErrorIs(t, Verify(header, body, [][]byte{[]byte(old)}, later, 0), ErrSignatureMismatch)
	require.NoError(t, Verify(header, body, [][]byte{[]byte(cur)}, later, 0))

	// No previous secret, or the same one: one entry.
	require.Len(t, ActiveSecrets(cur, "", rotatedAt, t0), 1)
	require.Len(t, ActiveSecrets(cur, cur, rotatedAt, t0), 1)
}

func TestVerifyTimestampTolerance(t *testing.T) {
	t.Parallel()
	secret := []byte(NewSecret())
	header := Sign(secret, t0, body)
	for _, d := range []time.Duration{0, time.Minute, -time.Minute, DefaultTolerance, -DefaultTolerance} {
		require.NoError(t, Verify(header, body, [][]byte{secret}, t0.Add(d), 0), d)
	}
	for _, d := range []time.Duration{DefaultTolerance + time.Second, -DefaultTolerance - time.Second, 24 * time.Hour} {
		err := Verify(header, body, [][]byte{secret}, t0.Add(d), 0)
		require.ErrorIs(t, err, ErrTimestamp, d)
		require.Contains(t, err.Error(), "2026-01-01T00:00:00Z")
	}
	// An explicit tolerance.
	require.ErrorIs(t, Verify(header, body, [][]byte{secret}, t0.Add(11*time.Second), 10*time.Second), ErrTimestamp)
	require.NoError(t, Verify(header, body, [][]byte{secret}, t0.Add(10*time.Second), 10*time.Second))
	// A replay with a forged fresh timestamp does not match; a stale genuine one is stale.
	forged := strings.Replace(header, "t=1767225600", fmt.Sprintf("t=%d", t0.Add(time.Hour).Unix()), 1)
	require.ErrorIs(t, Verify(forged, body, [][]byte{secret}, t0.Add(time.Hour), 0), ErrSignatureMismatch)
}

func TestVerifyMalformedHeaders(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_x")
	good := Sign(secret, t0, body)
	v1 := good[strings.Index(good, "v1="):]
	for _, h := range []string{
		"",
		"t=1767225600",
		v1,
		"v1=,t=1767225600",
		"t=abc," + v1,
		"t=-1," + v1,
		"t=+1767225600," + v1,
		"t=1767225600,t=1767225600," + v1,
		"t=1767225600,v1=zz",
		"t=1767225600,v1=" + strings.Repeat("a", 63),
		"t=1767225600,v1=" + strings.Repeat("a", 66),
		"t=1767225600,v0=" + strings.Repeat("a", 64),
		"t=1767225600;" + v1,
		"garbage",
		"t=1767225600," + strings.Repeat(v1+",", 17) + v1,
		"t=1767225600," + strings.Repeat("x", maxHeaderLen),
		"t=99999999999999999999," + v1,
	} {
		require.ErrorIs(t, Verify(h, body, [][]byte{secret}, t0, 0), ErrMalformedHeader, h)
	}
	require.ErrorIs(t, Verify(good, body, nil, t0, 0), ErrNoSecrets)
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		s := NewSecret()
		require.True(t, strings.HasPrefix(s, SecretPrefix), s)
		require.Len(t, s, 49)
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
		require.NoError(t, err)
		require.Len(t, raw, 32)
		require.False(t, seen[s])
		seen[s] = true
	}
}
