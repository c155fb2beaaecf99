// Package browser is the headless Chromium of the console's browser tests: Debian's
// /usr/bin/chromium (never a browser a tool downloads), driven by chromedp, with what the
// page writes to its console gathered so a test can fail on any error, exception or
// Content-Security-Policy violation, and screenshots kept as test artifacts.
package browser

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// Chromium is Debian's chromium package's binary (.ci/run installs it).
const Chromium = "/usr/bin/chromium"

// Require skips t without Chromium, or fails it under CI.
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Chromium); err != nil {
		prereq.Missing(t, "no %s: apt-get install -y chromium to run the headless console checks", Chromium)
	}
}

// ScreenshotDir is where screenshots go: LAMBDA_CONSOLE_SCREENSHOTS (make test sets
// bin/console-screenshots), else console-screenshots beside the built binaries.
func ScreenshotDir() string {
	if dir := os.Getenv("LAMBDA_CONSOLE_SCREENSHOTS"); dir != "" {
		return dir
	}
	dir, _ := filepath.Abs(filepath.Join(prereq.BinDir(), "console-screenshots"))
	return dir
}

// Browser is one Chromium at 1280×900 with one tab (Ctx).
type Browser struct {
	Ctx context.Context
	t   testing.TB
	dir string

	mu       sync.Mutex
	problems []string
	warnings []string
}

// Start starts Chromium for t (stopped at its end, or after timeout) with the flags a
// headless run in a container needs. Its screenshots go to ScreenshotDir()/shots.
func Start(t testing.TB, timeout time.Duration, shots string) *Browser {
	t.Helper()
	Require(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium),
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
	b := &Browser{Ctx: ctx, t: t, dir: filepath.Join(ScreenshotDir(), shots)}

	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleException:
				b.mu.Lock()
				b.problems = append(b.problems, m.String()+" @ "+m.URL)
				b.mu.Unlock()
			case chromedp.ConsoleWarning: // logged, not failed: the browser's own warnings vary by version
				b.mu.Lock()
				b.warnings = append(b.warnings, m.String()+" @ "+m.URL)
				b.mu.Unlock()
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
	t.Logf("screenshots: %s", b.dir)
	return b
}

// Check fails the test on every console error, exception and CSP violation seen so far
// (and logs the warnings).
func (b *Browser) Check() {
	b.t.Helper()
	csp, err := chromedp.Run(b.Ctx, chromedp.Evaluate[[]string](`window.__csp || []`))
	if err != nil {
		b.t.Errorf("reading CSP violations: %v", err)
	}
	for _, v := range csp {
		b.t.Errorf("CSP violation: %s", v)
	}
	time.Sleep(200 * time.Millisecond) // the last console events are asynchronous
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
	for _, w := range b.warnings {
		b.t.Logf("browser console: %s", w)
	}
	b.problems, b.warnings = nil, nil
}

// Forget drops the console errors seen so far: for a failed load the page expected
// (a refused key's 401), which Chrome logs although the app handled it.
func (b *Browser) Forget() {
	time.Sleep(200 * time.Millisecond)
	b.mu.Lock()
	b.problems = nil
	b.mu.Unlock()
}

// Screenshot saves the whole page as name.png.
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		b.t.Error(err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// Do runs one step's actions; on failure it saves a screenshot failed-<step> and stops
// the test.
func (b *Browser) Do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.Screenshot("failed-" + strings.NewReplacer(" ", "-", "/", "-").Replace(step))
		b.t.Fatalf("%s: %v", step, err)
	}
}

// Text is the text of the first element sel matches.
func (b *Browser) Text(sel chromedp.CSS) string {
	b.t.Helper()
	s, err := chromedp.Run(b.Ctx, chromedp.Text(sel))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// Attr is an attribute of the first element sel matches ("" when absent).
func (b *Browser) Attr(sel chromedp.CSS, name string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.AttributeValue(sel, name))
	if err != nil {
		b.t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return v.Value
}

// TID selects an element by its data-testid.
func TID(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }

// WaitText waits (15 s at most) until the first element sel matches contains want.
func WaitText(sel chromedp.CSS, want string) chromedp.Action[chromedp.Void] {
	return chromedp.PollFunction[chromedp.Void](`(sel, want) => (document.querySelector(sel)?.textContent || "").includes(want)`,
		chromedp.WithPollingArgs(string(sel), want), chromedp.WithPollingTimeout(15*time.Second))
}

// SetDoc replaces a CodeMirror editor's document through the EditorView its wrapper
// (data-testid) exposes as cmView, once the editor is mounted.
func SetDoc(testid, doc string) chromedp.Action[chromedp.Void] {
	return chromedp.PollFunction[chromedp.Void](`(id, doc) => {
		const v = document.querySelector('[data-testid="' + id + '"]')?.cmView;
		if (!v) return false;
		v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: doc}});
		return true;
	}`, chromedp.WithPollingArgs(testid, doc))
}

// ShiftEnter presses Shift+Enter as a keyboard does (Puppeteer's way): a keyDown that
// carries its text, which the page may cancel, then keyUp. chromedp.KeyEvent would add a
// separate char event that types a newline whatever the page did with the keyDown.
func ShiftEnter() chromedp.Action[chromedp.Void] {
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
