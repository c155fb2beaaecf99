// Package secret reads the platform's shared secrets (a Kubernetes Secret mounted as a
// file, or the value given inline) and compares them in constant time. The runtime host's
// invoke secret travels in the RuntimeHeader header of every call the api makes.
package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// RuntimeHeader carries the deployment's invoke secret from the api to a runtime host.
const RuntimeHeader = "X-Lambda-Runtime-Secret"

// MinLength is the shortest secret accepted.
const MinLength = 16

// Load returns the secret from file when set, else inline, trimmed of surrounding white
// space; "" when neither is set. A set secret shorter than MinLength is an error.
func Load(inline, file string) (string, error) {
	s := inline
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		s = string(b)
	}
	s = strings.TrimSpace(s)
	if s != "" && len(s) < MinLength {
		return "", fmt.Errorf("secret of %d bytes: want at least %d", len(s), MinLength)
	}
	return s, nil
}

// Equal reports whether got is want, in time independent of where they differ.
func Equal(got string, want []byte) bool {
	return len(want) > 0 && subtle.ConstantTimeCompare([]byte(got), want) == 1
}

// New returns a random secret of 32 hex digits.
func New() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// WriteFile creates (or replaces) a secret file readable by its owner only.
func WriteFile(path, value string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(value), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
