package faas

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// FetchEndpoints asks a provider at baseURL (e.g. http://127.0.0.1:8081) for the base URLs
// of a function's ready replicas (GET /system/endpoints/{name}, the local provider's
// addition to the OpenFaaS provider API). The direct route reads it through here, and so
// do the tests and the benchmark.
func FetchEndpoints(ctx context.Context, client *http.Client, baseURL, name string) ([]string, error) {
	u := strings.TrimRight(baseURL, "/") + "/system/endpoints/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("endpoints of %s: %w", name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("endpoints of %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("endpoints of %s: status %d: %s", name, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	var list struct {
		Endpoints []string `json:"endpoints"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("endpoints of %s: decode: %w", name, err)
	}
	return list.Endpoints, nil
}
