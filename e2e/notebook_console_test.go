package e2e

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/browser"
)

// TestConsoleNotebook runs a notebook of three cells in headless Chromium against the real
// stack: cell 1 defines a variable, cell 2 prints it, cell 3 uses it (Shift+Enter runs the
// last one from the keyboard); each output appears under its cell, and the session the
// page used holds the three cells.
func TestConsoleNotebook(t *testing.T) {
	t.Parallel()
	c := signInConsole(t, "notebook-console")
	c.Do("open the notebook",
		chromedp.Click(browser.TID("nav-notebook")),
		chromedp.WaitVisible(browser.TID("cell-editor-2")),
		browser.SetDoc("cell-editor-0", "x = 21\nimport sys"),
		browser.SetDoc("cell-editor-1", `print("x is", x)`),
		browser.SetDoc("cell-editor-2", "{'double': x * 2}"),
	)
	c.Do("run cells 1 and 2",
		chromedp.Click(browser.TID("cell-run-0")),
		browser.WaitText(browser.TID("cell-status-0"), "succeeded"),
		chromedp.Click(browser.TID("cell-run-1")),
		browser.WaitText(browser.TID("cell-stdout-1"), "x is 21"),
	)
	c.Do("run cell 3 with Shift+Enter",
		chromedp.Click(chromedp.CSS(`[data-testid="cell-editor-2"] .cm-content`)),
		browser.ShiftEnter(),
		browser.WaitText(browser.TID("cell-status-2"), "succeeded"),
		browser.WaitText(browser.TID("cell-result-2"), `"double": 42`),
	)
	c.Screenshot("notebook")
	session := regexp.MustCompile(`[0-9a-f-]{36}`).FindString(c.Text(browser.TID("notebook-session")))
	require.NotEmpty(t, session)
	r := callAs(t, c.key, "GET", "/v1/sessions/"+session)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	cells, _ := r.body["cells"].([]any)
	require.Len(t, cells, 3, r.raw)
	c.Check()
}
