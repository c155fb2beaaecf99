package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lambda-microservice/lambda/internal/testkit/browser"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// The headless checks drive Debian's chromium (internal/testkit/browser). Without it or
// the bundle they skip, except under CI, where a missing browser or bundle is a failure.

const testKey = "lmk_test_key"

// browserPrereqs skips (or, under CI, fails) when chromium or the built bundle is missing.
func browserPrereqs(t *testing.T) {
	t.Helper()
	browser.Require(t)
	if _, err := dist.ReadFile("dist/index.html"); err != nil {
		prereq.Missing(t, "the console bundle is not built: internal/console/build.sh (make build) first")
	}
}

// newServer serves the console as the api will (Handler at /console/, / redirected there)
// and, when api is non-nil, the /v1 routes.
func newServer(t *testing.T, api http.Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/console/", Handler(WithTemporalUI("http://127.0.0.1:8233", "default")))
	mux.Handle("/{$}", http.RedirectHandler("/console/", http.StatusFound))
	if api != nil {
		mux.Handle("/v1/", api)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserSignInPage: the built app loads from Handler and renders its sign-in page
// with no console error, no exception and no CSP violation.
func TestBrowserSignInPage(t *testing.T) {
	browserPrereqs(t)
	srv := newServer(t, nil)
	b := browser.Start(t, 60*time.Second, "fake-api")
	ctx := b.Ctx
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(browser.TID("signin-key")),
		chromedp.WaitVisible(browser.TID("signin-submit")),
	)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.HasPrefix(loc, srv.URL+"/console/#/signin") {
		t.Errorf("location %s, want the sign-in route under /console/", loc)
	}
	label, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`label[for="signin-key"]`)))
	if label != "API key" {
		t.Errorf("the key input's label is %q", label)
	}
	b.Screenshot("signin")
	b.Check()
}

// TestBrowserPages walks the pages against a fake API: sign-in (refused, then accepted),
// functions, source editor, invoke, version diff, charts, executions, notebook (Shift+Enter
// and Run all), a pipeline run's graph going live to green after an approval.
func TestBrowserPages(t *testing.T) {
	browserPrereqs(t)
	if testing.Short() {
		t.Skip("-short")
	}
	api := &fakeAPI{key: testKey}
	srv := newServer(t, api.routes())
	b := browser.Start(t, 120*time.Second, "fake-api")
	ctx, do, check, forget := b.Ctx, b.Do, b.Check, b.Forget
	base := srv.URL + "/console/"

	do("sign in refused",
		chromedp.Navigate(base),
		chromedp.SendKeys(browser.TID("signin-key"), "wrong-key"),
		chromedp.Click(browser.TID("signin-submit")),
		browser.WaitText(browser.TID("signin-error"), "The API key was refused"),
	)
	do("sign in",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="signin-key"]').select()`),
		chromedp.SendKeys(browser.TID("signin-key"), testKey),
		chromedp.Click(browser.TID("signin-submit")),
		chromedp.WaitVisible(browser.TID("function-row-add")),
	)
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if strings.Contains(loc, testKey) {
		t.Errorf("the API key is in the URL %s", loc)
	}
	b.Screenshot("functions")
	// The refused key was a 401 the page expected; Chrome logs that failed load, which is
	// not an app error, so the console is checked from here on.
	forget()

	do("source",
		chromedp.Click(chromedp.CSS(`[data-testid="function-row-add"] a`)),
		browser.WaitText(chromedp.CSS(`[data-testid="fn-source"] .cm-content`), `print("adding", event)`),
		// Highlighting: the Python grammar loaded and tagged the keyword.
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="fn-source"] .cm-line span')].some(s => s.textContent === "def")`),
	)
	b.Screenshot("function-source")

	do("invoke",
		chromedp.Click(browser.TID("fn-tab-invoke")),
		chromedp.WaitVisible(browser.TID("invoke-event")),
		browser.SetDoc("invoke-event", `{"a": 2, "b": 40}`),
		chromedp.Click(browser.TID("invoke-submit")),
		browser.WaitText(browser.TID("result-value"), `"sum": 42`),
		browser.WaitText(browser.TID("result-stdout"), "adding"),
		browser.WaitText(browser.TID("result-status"), "succeeded"),
	)
	b.Screenshot("function-invoke")
	do("invoke async",
		chromedp.Click(browser.TID("invoke-mode-async")),
		chromedp.Click(browser.TID("invoke-submit")),
		browser.WaitText(browser.TID("result-execution-link"), "e-async"),
	)

	do("versions diff",
		chromedp.Click(browser.TID("fn-tab-versions")),
		chromedp.WaitVisible(browser.TID("version-row-1")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="version-diff"] .cm-mergeView`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="version-diff"] .cm-changedLine`)),
	)
	b.Screenshot("function-versions")

	do("charts",
		chromedp.Click(browser.TID("fn-tab-metrics")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-calls"] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-latency"] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-errors"] canvas`)),
	)
	b.Screenshot("function-metrics")

	do("executions",
		chromedp.Click(browser.TID("nav-executions")),
		chromedp.WaitVisible(browser.TID("execution-row-e-async")),
		browser.WaitText(chromedp.CSS(`[data-testid="execution-row-e-sync"] [data-testid="execution-row-status"]`), "succeeded"),
	)
	b.Screenshot("executions")
	do("execution",
		chromedp.Click(chromedp.CSS(`[data-testid="execution-row-e-async"] a`)),
		browser.WaitText(browser.TID("execution-result"), "succeeded"),
		chromedp.WaitVisible(browser.TID("execution-temporal-link")),
	)
	href, _ := chromedp.Run(ctx, chromedp.AttributeValue(browser.TID("execution-temporal-link"), "href"))
	if href.Value != "http://127.0.0.1:8233/namespaces/default/workflows/exec-e-async" {
		t.Errorf("Temporal link %q", href.Value)
	}
	b.Screenshot("execution")

	do("notebook shift+enter",
		chromedp.Click(browser.TID("nav-notebook")),
		chromedp.WaitVisible(browser.TID("cell-editor-0")),
		chromedp.Click(chromedp.CSS(`[data-testid="cell-editor-0"] .cm-content`)),
		browser.ShiftEnter(),
		chromedp.WaitVisible(browser.TID("cell-status-0")),
		browser.WaitText(browser.TID("notebook-session"), "s-1"),
	)
	if s := b.Text(browser.TID("cell-status-0")); s != "succeeded" {
		t.Errorf("cell 0: %s", s)
	}
	// Shift+Enter ran the cell without typing into it, and moved to the next cell.
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[[]any](`[document.querySelector('[data-testid="cell-editor-0"]').cmView.state.doc.toString(),
		!!document.activeElement?.closest('[data-testid="cell-editor-1"]')]`))
	if len(state) != 2 || state[0] != "x = 21" || state[1] != true {
		t.Errorf("after Shift+Enter in cell 1: [source, focus in cell 2] = %v", state)
	}
	do("notebook run all",
		chromedp.Click(browser.TID("notebook-run-all")),
		browser.WaitText(browser.TID("cell-result-2"), "42"),
		browser.WaitText(browser.TID("cell-stdout-1"), "x is 21"),
	)
	do("notebook promote",
		chromedp.SendKeys(browser.TID("notebook-promote-name"), "doubler"),
		chromedp.Click(browser.TID("notebook-promote")),
		browser.WaitText(browser.TID("notebook-promote-result"), "doubler"),
	)
	b.Screenshot("notebook")

	do("notebook error",
		chromedp.Click(browser.TID("notebook-add-cell")),
		chromedp.WaitVisible(browser.TID("cell-editor-3")),
		browser.SetDoc("cell-editor-3", "y"),
		chromedp.Click(browser.TID("cell-run-3")),
		browser.WaitText(browser.TID("cell-error-3"), "NameError"),
		browser.WaitText(browser.TID("cell-error-3"), "Traceback"),
	)

	// The refused registration is a 409 the page expects; Chrome logs that failed load, so
	// the console is checked before it and forgotten after it.
	check()
	do("new function refused",
		chromedp.Navigate(base+"#/functions/new"),
		chromedp.WaitVisible(browser.TID("fn-source")),
		chromedp.SetValue(browser.TID("fn-language"), "node"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="fn-language"]').dispatchEvent(new Event("change", {bubbles: true}))`),
		browser.WaitText(chromedp.CSS(`[data-testid="fn-source"] .cm-content`), "exports.handler"),
		chromedp.SendKeys(browser.TID("fn-name"), "add"),
		chromedp.Click(browser.TID("fn-create")),
		browser.WaitText(browser.TID("error"), "already exists"),
		browser.WaitText(browser.TID("error"), "HTTP 409"),
	)
	b.Screenshot("function-new-conflict")
	forget()

	do("pipelines",
		chromedp.Click(browser.TID("nav-pipelines")),
		chromedp.Click(chromedp.CSS(`[data-testid="pipeline-row-approval"] a`)),
		browser.WaitText(chromedp.CSS(`[data-testid="pipeline-definition"] .cm-content`), `"wait_for"`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="pipeline-graph"] [data-testid="step-approve"]`)),
		chromedp.WaitVisible(browser.TID("run-row-r-1")),
	)
	b.Screenshot("pipeline")

	do("pipeline run graph",
		chromedp.Navigate(base+"#/runs/r-1"),
		chromedp.WaitVisible(browser.TID("run-graph")),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="run-status"]')?.dataset.status === "waiting"`, chromedp.WithPollingTimeout(20*time.Second)),
	)
	if s, _ := chromedp.Run(ctx, chromedp.AttributeValue(browser.TID("run-step-left"), "data-status")); s.Value != "succeeded" {
		t.Errorf("step left: %q", s.Value)
	}
	b.Screenshot("run-waiting")
	do("approve",
		chromedp.Click(browser.TID("run-approve")),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="run-step-last"]')?.dataset.status === "succeeded"`, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="run-status"]')?.dataset.status === "succeeded"`),
		chromedp.Click(browser.TID("run-step-first")),
		browser.WaitText(browser.TID("run-step-detail"), "e-sync"),
	)
	if s, _ := chromedp.Run(ctx, chromedp.AttributeValue(browser.TID("run-step-cleanup"), "data-status")); s.Value != "skipped" {
		t.Errorf("step cleanup: %q", s.Value)
	}
	b.Screenshot("run-succeeded")
	check()
}
