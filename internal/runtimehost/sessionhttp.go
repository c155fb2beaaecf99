package runtimehost

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// The session routes: POST /_/sessions (open), POST /_/sessions/{id}/cells, DELETE
// /_/sessions/{id}?tenant=, GET /_/sessions (the open ones, with their workers' pids).

// platformOnly refuses a caller without the deployment's invoke secret, as POST / does:
// nothing is read, started or run for it.
func platformOnly(h *Host, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.cfg.Auth != AuthNone && !platformsecret.Equal(r.Header.Get(platformsecret.RuntimeHeader), h.cfg.secret) {
			w.Header()["Content-Type"] = contentTypeJSON
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"type":"Unauthorized","message":"this runtime host runs calls of the platform only (`+platformsecret.RuntimeHeader+`)"}}`)
			return
		}
		next(w, r)
	}
}

func (h *Host) decodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, h.cfg.MaxBody+1))
	if err != nil {
		return fault.Wrap(fault.Invalid, err, "cannot read the request body")
	}
	if int64(len(b)) > h.cfg.MaxBody {
		return fault.New(fault.TooLarge, "request body exceeds %d bytes", h.cfg.MaxBody)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fault.Wrap(fault.Invalid, err, "malformed request: %s", err.Error())
	}
	return nil
}

func (h *Host) answer(w http.ResponseWriter, code int, v any) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *Host) answerError(w http.ResponseWriter, err error) {
	var buf bytes.Buffer
	code := h.writeError(&buf, err)
	if fault.KindOf(err) == fault.NotFound {
		code = http.StatusNotFound // on these routes: no such session here
		buf.Reset()
		b := append(buf.AvailableBuffer(), `{"error":{"type":"SessionNotFound","message":`...)
		b = appendString(b, fault.Detail(err))
		buf.Write(append(b, "}}"...))
	}
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func handleOpenSession(h *Host) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req SessionOpen
		if err := h.decodeJSON(r, &req); err != nil {
			h.answerError(w, err)
			return
		}
		if err := h.OpenSession(req); err != nil {
			h.answerError(w, err)
			return
		}
		h.answer(w, http.StatusCreated, map[string]string{"id": req.ID, "replica": h.advertise})
	}
}

func handleCell(h *Host) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req CellRequest
		if err := h.decodeJSON(r, &req); err != nil {
			h.answerError(w, err)
			return
		}
		out, err := h.RunCell(r.PathValue("id"), req)
		if err != nil {
			h.answerError(w, err)
			return
		}
		h.answer(w, http.StatusOK, out)
	}
}

func handleCloseSession(h *Host) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.CloseSession(r.PathValue("id"), r.URL.Query().Get("tenant"))
		w.WriteHeader(http.StatusNoContent)
	}
}

func handleListSessions(h *Host) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		type open struct {
			ID  string `json:"id"`
			PID int    `json:"pid"`
		}
		list := []open{}
		h.sess.mu.Lock()
		for id, s := range h.sess.m {
			if s.w != nil {
				list = append(list, open{ID: id, PID: s.w.proc.Pid()})
			}
		}
		h.sess.mu.Unlock()
		h.answer(w, http.StatusOK, map[string]any{"sessions": list})
	}
}

// advertiseURL is the base URL the api should call this replica at for its sessions:
// LAMBDA_RUNTIME_ADVERTISE_URL, where "auto" means this host's first non-loopback IPv4
// address and the listen port (a Kubernetes pod's own address); "" lets the api keep the
// address it used.
func advertiseURL(cfg Config) string {
	if cfg.AdvertiseURL != "auto" {
		return cfg.AdvertiseURL
	}
	_, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || port == "" {
		port = "8080"
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return "http://" + net.JoinHostPort(ipn.IP.String(), port)
		}
	}
	return ""
}
