package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/browser"
)

// consoleUser is a person at the web console of the shared platform: a fresh tenant's
// API key and a headless Chromium signed in with it. Feature tests add their pages'
// checks with it (a file of their own in e2e/):
//
//	c := signInConsole(t, "notebook-console")     // a fresh tenant, signed in
//	c.Do("run cells", chromedp.Click(browser.TID("notebook-run-all")), ...)
//	c.Screenshot("notebook")
//	c.Check()                                     // no console error so far
type consoleUser struct {
	*browser.Browser
	tenant, key string
	base        string // the console's URL
}

// signInConsole creates tenant and signs in to the console, served by the api, with its
// first API key; screenshots go to a folder named after the tenant.
func signInConsole(t *testing.T, tenant string) *consoleUser {
	t.Helper()
	browser.Require(t)
	r := call(t, "POST", "/v1/tenants", fmt.Sprintf(`{"name":%q}`, tenant))
	require.Equal(t, 201, r.status, r.raw)
	c := &consoleUser{Browser: browser.Start(t, 3*time.Minute, "e2e-"+tenant), tenant: tenant,
		key: r.body["api_key"].(string), base: stack.APIURL + "/console/"}
	c.Do("sign in",
		chromedp.Navigate(stack.APIURL+"/"), // the api sends / to the console
		chromedp.WaitVisible(browser.TID("signin-key")),
		chromedp.SendKeys(browser.TID("signin-key"), c.key),
		chromedp.Click(browser.TID("signin-submit")),
		chromedp.WaitVisible(browser.TID("function-list")),
	)
	loc, err := chromedp.Run(c.Ctx, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(loc, c.base), "the console at %s, got %s", c.base, loc)
	require.NotContains(t, loc, c.key, "the API key is never in a URL")
	return c
}

// TestConsole signs in to the console served by the real api with a tenant's key,
// registers a Python function in the editor, invokes it sync and async and sees the
// result and stdout, adds a version and sees the diff, sees the charts from the stats
// endpoint, and finds the execution with its link to the workflow in the Temporal UI —
// with no error in the browser's console.
func TestConsole(t *testing.T) {
	t.Parallel()
	c := signInConsole(t, "console-user")
	c.Screenshot("functions-empty")

	const v1 = "def handler(event, context):\n    print(\"adding\", event)\n    return {\"sum\": event[\"a\"] + event[\"b\"]}\n"
	const v2 = "def handler(event, context):\n    print(\"multiplying\", event)\n    return {\"product\": event[\"a\"] * event[\"b\"]}\n"
	c.Do("register in the editor",
		chromedp.Click(browser.TID("function-new")),
		chromedp.WaitVisible(browser.TID("fn-source")),
		chromedp.SendKeys(browser.TID("fn-name"), "adder"),
		chromedp.SetValue(browser.TID("fn-language"), "python"),
		browser.SetDoc("fn-source", v1),
		chromedp.Click(browser.TID("fn-create")),
		// Created (built on the real runtime), the page opens the function's invoke tab.
		chromedp.WaitVisible(browser.TID("invoke-event")),
		browser.WaitText(browser.TID("fn-meta"), "python · v1"),
	)
	c.Screenshot("function-created")

	c.Do("invoke sync",
		browser.SetDoc("invoke-event", `{"a": 2, "b": 40}`),
		chromedp.Click(browser.TID("invoke-submit")),
		browser.WaitText(browser.TID("result-status"), "succeeded"),
		browser.WaitText(browser.TID("result-value"), `"sum": 42`),
		browser.WaitText(browser.TID("result-stdout"), "adding {'a': 2, 'b': 40}"),
	)
	c.Screenshot("function-invoke")

	c.Do("invoke async",
		chromedp.Click(browser.TID("invoke-mode-async")),
		browser.SetDoc("invoke-event", `{"a": 20, "b": 22}`),
		chromedp.Click(browser.TID("invoke-submit")),
		browser.WaitText(browser.TID("result-value"), `"sum": 42`),
		browser.WaitText(browser.TID("invoke-result"), "async"),
		chromedp.WaitVisible(browser.TID("result-execution-link")),
	)
	link := c.Attr(browser.TID("result-execution-link"), "href")
	id := regexp.MustCompile(`[0-9a-f-]{36}`).FindString(link)
	require.NotEmpty(t, id, "execution link %q", link)
	// The same execution through the API: durable, succeeded.
	r := callAs(t, c.key, "GET", "/v1/executions/"+id)
	require.Equal(t, "async", r.body["mode"], r.raw)
	require.Equal(t, "succeeded", r.body["status"], r.raw)

	c.Do("new version from the source tab",
		chromedp.Click(browser.TID("fn-tab-source")),
		browser.WaitText(chromedp.CSS(`[data-testid="fn-source"] .cm-content`), `print("adding", event)`),
		browser.SetDoc("fn-source", v2),
		chromedp.Click(browser.TID("fn-save")),
		browser.WaitText(browser.TID("fn-save-result"), "Saved as version 2"),
		browser.WaitText(browser.TID("fn-meta"), "python · v2"),
	)
	c.Do("version diff",
		chromedp.Click(browser.TID("fn-tab-versions")),
		chromedp.WaitVisible(browser.TID("version-row-1")),
		chromedp.WaitVisible(browser.TID("version-row-2")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="version-diff"] .cm-mergeView`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="version-diff"] .cm-changedLine`)),
		browser.WaitText(browser.TID("version-diff"), "multiplying"),
	)
	c.Screenshot("function-versions")

	// The charts read GET /v1/stats/functions/adder: two calls in the last hour.
	c.Do("charts",
		chromedp.Click(browser.TID("fn-tab-metrics")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-calls"] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-latency"] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-errors"] canvas`)),
		browser.WaitText(browser.TID("stats"), "2 calls, 0 errors"),
		browser.WaitText(browser.TID("stats"), "from request_logs"),
	)
	c.Screenshot("function-metrics")

	c.Do("executions",
		chromedp.Click(browser.TID("nav-executions")),
		chromedp.WaitVisible(browser.TID("execution-row-"+id)),
		browser.WaitText(chromedp.CSS(`[data-testid="execution-row-`+id+`"] [data-testid="execution-row-status"]`), "succeeded"),
	)
	c.Screenshot("executions")
	c.Do("execution",
		chromedp.Click(chromedp.CSS(`[data-testid="execution-row-`+id+`"] a`)),
		browser.WaitText(browser.TID("execution-id"), id),
		chromedp.WaitVisible(browser.TID("execution-temporal-link")),
	)
	c.Screenshot("execution")
	temporal := c.Attr(browser.TID("execution-temporal-link"), "href")
	require.NotEmpty(t, stack.TemporalUIURL, "the e2e stack runs the Temporal UI")
	require.Equal(t, stack.TemporalUIURL+"/namespaces/default/workflows/exec-"+id, temporal)
	// The link leads to the Temporal UI the stack runs, whose API knows the workflow.
	resp, err := http.Get(stack.TemporalUIURL + "/api/v1/namespaces/default/workflows/exec-" + id)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), "exec-"+id)
	require.Contains(t, string(body), strconv.Quote("WORKFLOW_EXECUTION_STATUS_COMPLETED"))

	c.Check()
}

// callAs sends one request to the api with a tenant's key.
func callAs(t *testing.T, key, method, path string) reply {
	t.Helper()
	req, err := http.NewRequest(method, stack.APIURL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}
