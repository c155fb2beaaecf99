package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// 11: notebook session cells through the whole stack (api → the replica holding the
// session's kernel → the cell → request_logs row), back to back in one session, since a
// session runs one cell at a time.
func (r *Runner) sessionCells(ctx context.Context, rep *Report) {
	for _, title := range []string{"python", "node"} {
		status, body, err := Do(ctx, r.P.client(), http.MethodPost, r.P.APIURL+"/v1/sessions", r.P.Header(),
			[]byte(fmt.Sprintf(`{"language":%q}`, title)))
		if err == nil && status != http.StatusCreated {
			err = StatusError(status, body)
		}
		var s struct {
			ID string `json:"id"`
		}
		if err == nil {
			err = json.Unmarshal(body, &s)
		}
		if err != nil {
			rep.add(Row{Section: "11 session cells", Case: title, Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
			continue
		}
		req := Request{Method: http.MethodPost, URL: r.P.APIURL + "/v1/sessions/" + s.ID + "/cells", Header: r.P.Header(),
			Body: []byte(`{"source":"n = 1"}`)}
		c := NewClient(1)
		op := HTTPOp(c, req)
		if err := op(ctx); err != nil { // defines n
			rep.add(Row{Section: "11 session cells", Case: title, Note: "first cell failed: " + err.Error(), Verdict: "FAIL"})
			continue
		}
		req.Body = []byte(`{"source":"n = n + 1\nn"}`)
		op = HTTPOp(c, req)
		r.logf("11 session cells: %s, %d cells back to back", title, r.S.SessionCells)
		res := Sequential(ctx, r.S.SessionCells, 10*time.Second, op)
		c.CloseIdleConnections()
		row := Row{Section: "11 session cells", Case: title + ": a cell (`n = n + 1; n`) in one session, back to back, recorded",
			Result: &res, Budget: "p50 ≤ 3 ms"}
		row.Verdict = verdict(res.Quantile(50) <= 3 && res.ErrorRate() == 0)
		rep.add(row)
		_, _, _ = Do(ctx, r.P.client(), http.MethodDelete, r.P.APIURL+"/v1/sessions/"+s.ID, r.P.Header(), nil)
	}
	r.pause(ctx)
}
