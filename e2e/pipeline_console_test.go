package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/browser"
)

// TestConsolePipeline registers a pipeline of a function step, a wait for the signal
// "approve" and a last function step in the console's editor, starts a durable run from
// the pipeline's page, sees the run's graph stop at the wait step, approves it with the
// page's signal button and watches every step node turn succeeded — the run's output
// computed by both function steps, the last step's execution one click away — then visits
// every other page (functions, executions, new pipeline, notebook), with no error in the
// browser's console on any of them.
func TestConsolePipeline(t *testing.T) {
	t.Parallel()
	c := signInConsole(t, "pipeline-console")
	const adder = "def handler(event, context):\n    return {\"sum\": event[\"a\"] + event[\"b\"]}\n"
	r := postAs(t, c.key, "/v1/functions", registerBody("add", "python", adder, nil))
	require.Equal(t, http.StatusCreated, r.status, r.raw)

	const definition = `{
  "name": "approval",
  "description": "add, wait for approval, add again",
  "steps": [
    {"id": "first", "function": "add"},
    {"id": "approve", "wait_for": {"signal": "approve", "timeout_ms": 600000}},
    {"id": "last", "function": "add", "input": {"a": "${steps.first.output.sum}", "b": "${steps.approve.output.bonus}"}}
  ]
}`
	c.Do("register the pipeline in the editor",
		chromedp.Click(browser.TID("nav-pipelines")),
		chromedp.WaitVisible(browser.TID("pipeline-list")),
		chromedp.Click(browser.TID("pipeline-new")),
		chromedp.WaitVisible(browser.TID("pipeline-definition-editor")),
		browser.SetDoc("pipeline-definition-editor", definition),
		chromedp.Click(browser.TID("pipeline-create")),
		// Created, the page opens the pipeline: its steps as a graph.
		browser.WaitText(browser.TID("pipeline-title"), "approval"),
		chromedp.WaitVisible(browser.TID("step-first")),
		chromedp.WaitVisible(browser.TID("step-approve")),
		chromedp.WaitVisible(browser.TID("step-last")),
	)
	c.Screenshot("pipeline")

	c.Do("start an async run",
		browser.SetDoc("pipeline-input", `{"a": 2, "b": 40}`),
		chromedp.Click(browser.TID("pipeline-run")),
		chromedp.WaitVisible(browser.TID("run-graph")),
		waitAttr(browser.TID("run-step-approve"), "data-status", "waiting"),
		browser.WaitText(browser.TID("run-status"), "waiting"),
		waitAttr(browser.TID("run-step-first"), "data-status", "succeeded"),
		waitAttr(browser.TID("run-step-last"), "data-status", "pending"),
		chromedp.WaitVisible(browser.TID("run-approve")),
	)
	c.Screenshot("run-waiting")
	id := regexp.MustCompile(`[0-9a-f-]{36}`).FindString(c.Text(browser.TID("run-id")))
	require.NotEmpty(t, id)
	require.Contains(t, c.Attr(chromedp.CSS(`[data-testid="run-step-approve"]`), "class"), "st-waiting")

	c.Do("approve",
		browser.SetDoc("run-signal-payload", `{"bonus": 100}`),
		chromedp.Click(browser.TID("run-approve")),
		browser.WaitText(browser.TID("run-notice"), `Signal "approve" sent.`),
		waitAttr(browser.TID("run-node-output"), "data-status", "succeeded"),
		browser.WaitText(browser.TID("run-status"), "succeeded"),
		waitAttr(browser.TID("run-step-first"), "data-status", "succeeded"),
		waitAttr(browser.TID("run-step-approve"), "data-status", "succeeded"),
		waitAttr(browser.TID("run-step-last"), "data-status", "succeeded"),
		browser.WaitText(browser.TID("run-output"), `"sum": 142`),
	)
	c.Screenshot("run-succeeded")
	for _, step := range []string{"first", "approve", "last"} {
		require.Contains(t, c.Attr(browser.TID("run-step-"+step), "class"), "st-succeeded", step)
	}
	c.Do("the last step's detail",
		chromedp.Click(browser.TID("run-step-last")),
		chromedp.WaitVisible(browser.TID("run-step-detail")),
		browser.WaitText(browser.TID("run-step-detail-status"), "succeeded"),
		browser.WaitText(browser.TID("run-step-output"), `"sum": 142`),
		chromedp.WaitVisible(browser.TID("run-step-execution")),
	)
	c.Screenshot("run-step")
	execution := c.Text(browser.TID("run-step-execution"))
	require.Regexp(t, `^[0-9a-f-]{36}$`, execution)
	c.Do("the step's execution",
		chromedp.Click(browser.TID("run-step-execution")),
		browser.WaitText(browser.TID("execution-id"), execution),
		browser.WaitText(browser.TID("execution-result"), `"sum": 142`),
	)
	// The same run through the API: durable, every step succeeded.
	got := callAs(t, c.key, "GET", "/v1/runs/"+id)
	require.Equal(t, http.StatusOK, got.status, got.raw)
	require.Equal(t, "succeeded", got.body["status"], got.raw)
	steps, _ := got.body["steps"].([]any)
	require.Len(t, steps, 3, got.raw)
	for _, s := range steps {
		require.Equal(t, "succeeded", s.(map[string]any)["status"], got.raw)
	}

	c.Do("the run in the pipeline's list",
		chromedp.Click(browser.TID("nav-pipelines")),
		chromedp.WaitVisible(browser.TID("pipeline-row-approval")),
		chromedp.Click(chromedp.CSS(`[data-testid="pipeline-row-approval"] a`)),
		chromedp.WaitVisible(browser.TID("run-row-"+id)),
		browser.WaitText(chromedp.CSS(`[data-testid="run-row-`+id+`"] [data-testid="run-row-status"]`), "succeeded"),
	)
	// Every page of the console loads from the real API; c.Check covers them all.
	c.Do("functions", chromedp.Click(browser.TID("nav-functions")), chromedp.WaitVisible(browser.TID("function-list")),
		browser.WaitText(browser.TID("function-list"), "add"))
	c.Do("executions", chromedp.Click(browser.TID("nav-executions")), chromedp.WaitVisible(browser.TID("execution-row-"+execution)))
	c.Do("new pipeline", chromedp.Click(browser.TID("nav-pipelines")), chromedp.Click(browser.TID("pipeline-new")),
		chromedp.WaitVisible(browser.TID("pipeline-definition-editor")))
	c.Do("notebook", chromedp.Click(browser.TID("nav-notebook")), chromedp.WaitVisible(browser.TID("cell-editor-0")))
	c.Check()
}

// waitAttr waits (90 s at most: a run's steps run on the real stack) until the first
// element sel matches has attribute name equal to want.
func waitAttr(sel chromedp.CSS, name, want string) chromedp.Action[chromedp.Void] {
	return chromedp.PollFunction[chromedp.Void](`(sel, name, want) => document.querySelector(sel)?.getAttribute(name) === want`,
		chromedp.WithPollingArgs(string(sel), name, want), chromedp.WithPollingTimeout(90*time.Second))
}

// postAs sends one JSON body to the api with a tenant's key.
func postAs(t *testing.T, key, path, body string) reply {
	t.Helper()
	req, err := http.NewRequest("POST", stack.APIURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}
