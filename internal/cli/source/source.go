// Package source turns a function's file on disk into a registration request: the
// language from the file's extension, the name from its file name, and the
// dependencies from the manifest beside it (package.json, requirements.txt or
// Cargo.toml). Everything here is local: an error means nothing should be sent.
package source

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

// NameRE is what the platform accepts as a function (or pipeline) name.
var NameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// extensions maps a file extension to its language.
var extensions = map[string]string{
	".py": "python", ".js": "node", ".mjs": "node", ".cjs": "node", ".rs": "rust",
}

// aliases maps the platform's language titles and aliases to the language whose
// manifest applies.
var aliases = map[string]string{
	"python": "python", "python3": "python", "py": "python",
	"node": "node", "nodejs": "node", "javascript": "node", "js": "node",
	"rust": "rust", "rs": "rust",
}

// manifests reads the dependencies of one language from the file beside the source.
var manifests = map[string]struct {
	file string
	read func([]byte) (map[string]string, error)
}{
	"python": {"requirements.txt", requirements},
	"node":   {"package.json", packageJSON},
	"rust":   {"Cargo.toml", cargoToml},
}

// Options override what the file would give.
type Options struct {
	Name     string
	Language string
}

// Load reads the function at path into a registration request (name, language,
// source, dependencies). Settings (timeout, memory, env) are the caller's.
func Load(path string, o Options) (client.FunctionSpec, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return client.FunctionSpec{}, fmt.Errorf("%s: no such file", path)
	}
	if err != nil {
		return client.FunctionSpec{}, err
	}
	ext := strings.ToLower(filepath.Ext(path))
	lang := o.Language
	if lang == "" {
		lang = extensions[ext]
	}
	if lang == "" {
		return client.FunctionSpec{}, fmt.Errorf("%s: unknown extension %q: want .py, .js, .mjs, .cjs or .rs, or give --language", path, ext)
	}
	name := o.Name
	if name == "" {
		if name, err = NameFromFile(path); err != nil {
			return client.FunctionSpec{}, err
		}
	}
	if !NameRE.MatchString(name) {
		return client.FunctionSpec{}, fmt.Errorf("invalid name %q: want ^[a-z][a-z0-9-]{0,62}$", name)
	}
	spec := client.FunctionSpec{Name: name, Language: lang, Source: string(src)}
	if m, ok := manifests[aliases[strings.ToLower(lang)]]; ok {
		file := filepath.Join(filepath.Dir(path), m.file)
		raw, err := os.ReadFile(file)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return client.FunctionSpec{}, err
		default:
			if spec.Dependencies, err = m.read(raw); err != nil {
				return client.FunctionSpec{}, fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	return spec, nil
}

var notNameChars = regexp.MustCompile(`[^a-z0-9]+`)

// NameFromFile is a file's base name made a valid name: lower case, runs of other
// characters as one dash ("Hello_World.py" → "hello-world").
func NameFromFile(path string) (string, error) {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	name := strings.Trim(notNameChars.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if !NameRE.MatchString(name) {
		return "", fmt.Errorf("cannot make a function name from %q (want ^[a-z][a-z0-9-]{0,62}$): give --name", filepath.Base(path))
	}
	return name, nil
}

// packageJSON reads npm's "dependencies" (devDependencies are not the function's).
func packageJSON(raw []byte) (map[string]string, error) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	return nonEmpty(pkg.Dependencies), nil
}

var requirementRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[A-Za-z0-9,._ -]*\])?)\s*(.*)$`)

// requirements reads pip's requirement lines: "name", "name==1.2", "name>=1,<2";
// comments and blank lines are skipped, options and URLs refused (wheels come from the
// platform's index, by name).
func requirements(raw []byte) (map[string]string, error) {
	deps := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := requirementRE.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "-") || strings.Contains(line, "://") || strings.Contains(m[2], "@") {
			return nil, fmt.Errorf("line %d: %q: want a package name and an optional version (name==1.2, name>=1.0)", n, line)
		}
		spec := strings.ReplaceAll(m[2], " ", "")
		if spec == "" {
			spec = "*"
		}
		deps[m[1]] = spec
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nonEmpty(deps), nil
}

// cargoToml reads Cargo's [dependencies]: "1.0" or { version = "1.0", ... }; path and
// git dependencies are refused (crates come from the platform's registry).
func cargoToml(raw []byte) (map[string]string, error) {
	var manifest struct {
		Dependencies map[string]any `toml:"dependencies"`
	}
	if err := toml.Unmarshal(raw, &manifest); err != nil {
		return nil, fmt.Errorf("not valid TOML: %w", err)
	}
	deps := map[string]string{}
	for name, v := range manifest.Dependencies {
		switch v := v.(type) {
		case string:
			deps[name] = v
		case map[string]any:
			ver, _ := v["version"].(string)
			if ver == "" {
				return nil, fmt.Errorf("dependency %q: want a registry version (path and git dependencies are not supported)", name)
			}
			deps[name] = ver
		default:
			return nil, fmt.Errorf("dependency %q: want a version string or table", name)
		}
	}
	return nonEmpty(deps), nil
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
