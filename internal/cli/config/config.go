// Package config keeps the CLI's profiles — which platform (API URL) and which API key —
// in one YAML file readable only by its owner (0600), and resolves the profile a
// command uses from --profile, LAMBDA_PROFILE, LAMBDA_API and LAMBDA_TOKEN.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultAPI is the platform address `make run` serves.
const DefaultAPI = "http://127.0.0.1:8000"

// DefaultProfile is the profile used when none is named or current.
const DefaultProfile = "default"

// File is the profiles file.
type File struct {
	// Current is the profile the last login chose.
	Current  string             `json:"current,omitempty"`
	Profiles map[string]Profile `json:"profiles,omitempty"`
}

// Profile is one platform and key.
type Profile struct {
	API   string `json:"api"`
	Token string `json:"token,omitempty"`
}

// Path is the profiles file in dir; "" means os.UserConfigDir()/lambda.
func Path(dir string) (string, error) {
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find the config directory: %w", err)
		}
		dir = filepath.Join(base, "lambda")
	}
	return filepath.Join(dir, "config.yaml"), nil
}

// Load reads the profiles file; a missing file is an empty one.
func Load(path string) (File, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, nil
	}
	if err != nil {
		return File{}, fmt.Errorf("read profiles: %w", err)
	}
	var f File
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		return File{}, fmt.Errorf("read profiles %s: %w", path, err)
	}
	return f, nil
}

// Save writes the file atomically with mode 0600 (it holds API keys), creating its
// directory with 0700.
func (f File) Save(path string) error {
	raw, err := yaml.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode profiles: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save profiles: %w", err)
	}
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fmt.Errorf("save profiles: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	return nil
}

// ErrUnknownProfile is a profile named by --profile or LAMBDA_PROFILE that the file lacks.
var ErrUnknownProfile = errors.New("unknown profile")

// ErrNotLoggedIn means no profile and no LAMBDA_TOKEN: there is no key to send.
var ErrNotLoggedIn = errors.New("not logged in: run `lambda login` or set LAMBDA_API and LAMBDA_TOKEN")

// Resolve picks the profile: the name given (the --profile flag), else LAMBDA_PROFILE,
// else the current one, else "default"; then LAMBDA_API and LAMBDA_TOKEN override its
// fields. A named profile that does not exist is ErrUnknownProfile.
func (f File) Resolve(name string, getenv func(string) string) (Profile, string, error) {
	if name == "" {
		name = getenv("LAMBDA_PROFILE")
	}
	explicit := name != ""
	if name == "" {
		name = f.Current
	}
	if name == "" {
		name = DefaultProfile
	}
	p, ok := f.Profiles[name]
	if !ok && explicit {
		known := slices.Sorted(maps.Keys(f.Profiles))
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return Profile{}, name, fmt.Errorf("%w %q (profiles: %s)", ErrUnknownProfile, name, list)
	}
	if v := getenv("LAMBDA_API"); v != "" {
		p.API = v
	}
	if v := getenv("LAMBDA_TOKEN"); v != "" {
		p.Token = v
	}
	if p.Token == "" && p.API == "" {
		return Profile{}, name, ErrNotLoggedIn
	}
	if p.API == "" {
		p.API = DefaultAPI
	}
	return p, name, nil
}
