package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The headless checks drive Debian's chromium (never a browser a tool downloads). Without
// it they skip, except under CI=true, where a missing browser or bundle is a failure.
const chromiumPath = "/usr/bin/chromium"

const testKey = "lmk_test_key"

// browserPrereqs skips (or, under CI, fails) when chromium or the built bundle is missing.
func browserPrereqs(t *testing.T) {
	t.Helper()
	miss := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: the headless console check must run)", what)
		}
		t.Skip(what)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		miss("no " + chromiumPath + ": apt-get install -y chromium to run the headless console check")
	}
	if _, err := dist.ReadFile("dist/index.html"); err != nil {
		miss("the console bundle is not built: internal/console/build.sh (make build) first")
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

// browser starts chromium at 1280×900 and gathers what the page writes to its console
// (errors, exceptions, failed loads, CSP violations); check fails the test on any of them
// and logs warnings.
func browser(t *testing.T, timeout time.Duration) (ctx context.Context, check, forget func()) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })

	var mu sync.Mutex
	var problems, warnings []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleException:
				mu.Lock()
				problems = append(problems, m.String()+" @ "+m.URL)
				mu.Unlock()
			case chromedp.ConsoleWarning: // logged, not failed: the browser's own warnings vary by version
				mu.Lock()
				warnings = append(warnings, m.String()+" @ "+m.URL)
				mu.Unlock()
			}
		}
	}()
	// Recorded from the first script of every document, before the app's own, so a style
	// or script the policy refused is seen even where Chrome does not log it.
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener("securitypolicyviolation",
			e => window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || "")));`,
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	check = func() {
		t.Helper()
		csp, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp || []`))
		if err != nil {
			t.Errorf("reading CSP violations: %v", err)
		}
		for _, v := range csp {
			t.Errorf("CSP violation: %s", v)
		}
		time.Sleep(200 * time.Millisecond) // the last console events are asynchronous
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("browser console: %s", p)
		}
		for _, w := range warnings {
			t.Logf("browser console: %s", w)
		}
	}
	forget = func() {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		problems = nil
		mu.Unlock()
	}
	return ctx, check, forget
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LAMBDA_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	_ = os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

// shiftEnter presses Shift+Enter as a keyboard does (Puppeteer's way): a keyDown that
// carries its text, which the page may cancel, then keyUp. chromedp.KeyEvent would add a
// separate char event that types a newline whatever the page did with the keyDown.
func shiftEnter() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Modifiers: 8, Key: "Enter", Code: "Enter",
			Text: "\r", UnmodifiedText: "\r", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := down
		up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
		_, err := chromedp.Call(ctx, input.DispatchKeyEvent, up)
		return err
	})
}

// setDoc replaces an editor's document through the EditorView its wrapper exposes, once
// the editor is mounted.
func setDoc(testid, doc string) chromedp.Action[chromedp.Void] {
	return chromedp.PollFunction[chromedp.Void](`(id, doc) => {
		const v = document.querySelector('[data-testid="' + id + '"]')?.cmView;
		if (!v) return false;
		v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: doc}});
		return true;
	}`, chromedp.WithPollingArgs(testid, doc))
}

func tid(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }

func text(t *testing.T, ctx context.Context, sel chromedp.CSS) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// TestBrowserSignInPage: the built app loads from Handler and renders its sign-in page
// with no console error, no exception and no CSP violation.
func TestBrowserSignInPage(t *testing.T) {
	browserPrereqs(t)
	srv := newServer(t, nil)
	ctx, check, _ := browser(t, 60*time.Second)
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(tid("signin-key")),
		chromedp.WaitVisible(tid("signin-submit")),
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
	screenshot(t, ctx, "signin")
	check()
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
	ctx, check, forget := browser(t, 120*time.Second)
	base := srv.URL + "/console/"
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			screenshot(t, ctx, "failed-"+strings.ReplaceAll(step, " ", "-"))
			t.Fatalf("%s: %v", step, err)
		}
	}
	waitText := func(sel chromedp.CSS, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](`(document.querySelector(`+"`"+string(sel)+"`"+`)?.textContent || "").includes(`+"`"+want+"`"+`)`,
			chromedp.WithPollingTimeout(15*time.Second))
	}

	do("sign in refused",
		chromedp.Navigate(base),
		chromedp.SendKeys(tid("signin-key"), "wrong-key"),
		chromedp.Click(tid("signin-submit")),
		waitText(tid("signin-error"), "The API key was refused"),
	)
	do("sign in",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="signin-key"]').select()`),
		chromedp.SendKeys(tid("signin-key"), testKey),
		chromedp.Click(tid("signin-submit")),
		chromedp.WaitVisible(tid("function-row-add")),
	)
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if strings.Contains(loc, testKey) {
		t.Errorf("the API key is in the URL %s", loc)
	}
	screenshot(t, ctx, "functions")
	// The refused key was a 401 the page expected; Chrome logs that failed load, which is
	// not an app error, so the console is checked from here on.
	forget()

	do("source",
		chromedp.Click(chromedp.CSS(`[data-testid="function-row-add"] a`)),
		waitText(chromedp.CSS(`[data-testid="fn-source"] .cm-content`), `print("adding", event)`),
		// Highlighting: the Python grammar loaded and tagged the keyword.
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="fn-source"] .cm-line span')].some(s => s.textContent === "def")`),
	)
	screenshot(t, ctx, "function-source")

	do("invoke",
		chromedp.Click(tid("fn-tab-invoke")),
		chromedp.WaitVisible(tid("invoke-event")),
		setDoc("invoke-event", `{"a": 2, "b": 40}`),
		chromedp.Click(tid("invoke-submit")),
		waitText(tid("result-value"), `"sum": 42`),
		waitText(tid("result-stdout"), "adding"),
		waitText(tid("result-status"), "succeeded"),
	)
	screenshot(t, ctx, "function-invoke")
	do("invoke async",
		chromedp.Click(tid("invoke-mode-async")),
		chromedp.Click(tid("invoke-submit")),
		waitText(tid("result-execution-link"), "e-async"),
	)

	do("versions diff",
		chromedp.Click(tid("fn-tab-versions")),
		chromedp.WaitVisible(tid("version-row-1")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="version-diff"] .cm-mergeView`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="version-diff"] .cm-changedLine`)),
	)
	screenshot(t, ctx, "function-versions")

	do("charts",
		chromedp.Click(tid("fn-tab-metrics")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-calls"] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-latency"] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="chart-errors"] canvas`)),
	)
	screenshot(t, ctx, "function-metrics")

	do("executions",
		chromedp.Click(tid("nav-executions")),
		chromedp.WaitVisible(tid("execution-row-e-async")),
		waitText(chromedp.CSS(`[data-testid="execution-row-e-sync"] [data-testid="execution-row-status"]`), "succeeded"),
	)
	screenshot(t, ctx, "executions")
	do("execution",
		chromedp.Click(chromedp.CSS(`[data-testid="execution-row-e-async"] a`)),
		waitText(tid("execution-result"), "succeeded"),
		chromedp.WaitVisible(tid("execution-temporal-link")),
	)
	href, _ := chromedp.Run(ctx, chromedp.AttributeValue(tid("execution-temporal-link"), "href"))
	if href.Value != "http://127.0.0.1:8233/namespaces/default/workflows/exec-e-async" {
		t.Errorf("Temporal link %q", href.Value)
	}
	screenshot(t, ctx, "execution")

	do("notebook shift+enter",
		chromedp.Click(tid("nav-notebook")),
		chromedp.WaitVisible(tid("cell-editor-0")),
		chromedp.Click(chromedp.CSS(`[data-testid="cell-editor-0"] .cm-content`)),
		shiftEnter(),
		chromedp.WaitVisible(tid("cell-status-0")),
		waitText(tid("notebook-session"), "s-1"),
	)
	if s := text(t, ctx, tid("cell-status-0")); s != "succeeded" {
		t.Errorf("cell 0: %s", s)
	}
	// Shift+Enter ran the cell without typing into it, and moved to the next cell.
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[[]any](`[document.querySelector('[data-testid="cell-editor-0"]').cmView.state.doc.toString(),
		!!document.activeElement?.closest('[data-testid="cell-editor-1"]')]`))
	if len(state) != 2 || state[0] != "x = 21" || state[1] != true {
		t.Errorf("after Shift+Enter in cell 1: [source, focus in cell 2] = %v", state)
	}
	do("notebook run all",
		chromedp.Click(tid("notebook-run-all")),
		waitText(tid("cell-result-2"), "42"),
		waitText(tid("cell-stdout-1"), "x is 21"),
	)
	do("notebook promote",
		chromedp.SendKeys(tid("notebook-promote-name"), "doubler"),
		chromedp.Click(tid("notebook-promote")),
		waitText(tid("notebook-promote-result"), "doubler"),
	)
	screenshot(t, ctx, "notebook")

	do("notebook error",
		chromedp.Click(tid("notebook-add-cell")),
		chromedp.WaitVisible(tid("cell-editor-3")),
		setDoc("cell-editor-3", "y"),
		chromedp.Click(tid("cell-run-3")),
		waitText(tid("cell-error-3"), "NameError"),
		waitText(tid("cell-error-3"), "Traceback"),
	)

	// The refused registration is a 409 the page expects; Chrome logs that failed load, so
	// the console is checked before it and forgotten after it.
	check()
	do("new function refused",
		chromedp.Navigate(base+"#/functions/new"),
		chromedp.WaitVisible(tid("fn-source")),
		chromedp.SetValue(tid("fn-language"), "node"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="fn-language"]').dispatchEvent(new Event("change", {bubbles: true}))`),
		waitText(chromedp.CSS(`[data-testid="fn-source"] .cm-content`), "exports.handler"),
		chromedp.SendKeys(tid("fn-name"), "add"),
		chromedp.Click(tid("fn-create")),
		waitText(tid("error"), "already exists"),
		waitText(tid("error"), "HTTP 409"),
	)
	screenshot(t, ctx, "function-new-conflict")
	forget()

	do("pipelines",
		chromedp.Click(tid("nav-pipelines")),
		chromedp.Click(chromedp.CSS(`[data-testid="pipeline-row-approval"] a`)),
		waitText(chromedp.CSS(`[data-testid="pipeline-definition"] .cm-content`), `"wait_for"`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="pipeline-graph"] [data-testid="step-approve"]`)),
		chromedp.WaitVisible(tid("run-row-r-1")),
	)
	screenshot(t, ctx, "pipeline")

	do("pipeline run graph",
		chromedp.Navigate(base+"#/runs/r-1"),
		chromedp.WaitVisible(tid("run-graph")),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="run-status"]')?.dataset.status === "waiting"`, chromedp.WithPollingTimeout(20*time.Second)),
	)
	if s, _ := chromedp.Run(ctx, chromedp.AttributeValue(tid("run-step-left"), "data-status")); s.Value != "succeeded" {
		t.Errorf("step left: %q", s.Value)
	}
	screenshot(t, ctx, "run-waiting")
	do("approve",
		chromedp.Click(tid("run-approve")),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="run-step-last"]')?.dataset.status === "succeeded"`, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="run-status"]')?.dataset.status === "succeeded"`),
		chromedp.Click(tid("run-step-first")),
		waitText(tid("run-step-detail"), "e-sync"),
	)
	if s, _ := chromedp.Run(ctx, chromedp.AttributeValue(tid("run-step-cleanup"), "data-status")); s.Value != "skipped" {
		t.Errorf("step cleanup: %q", s.Value)
	}
	screenshot(t, ctx, "run-succeeded")
	check()
}
