package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// encode writes v as JSON with status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError answers err as problem+json; internal errors are logged once, here.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		return // the caller went away (a long poll given up): nobody to answer, nothing failed
	}
	kind := fault.KindOf(err)
	status := kind.HTTPStatus()
	detail := fault.Detail(err)
	if status >= 500 {
		s.Log.Error("request failed", logging.Err(err), zap.String(logging.FieldRequestID, w.Header().Get("X-Request-Id")),
			zap.String("url.path", r.URL.Path), zap.String("error.kind", kind.String()))
	}
	if (kind == fault.Overloaded || kind == fault.RateLimited || kind == fault.TenantShare) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	if kind == fault.Unauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambda"`)
	}
	linger := kind == fault.TooLarge && bodyMayFollow(r)
	if linger {
		// Read the body on after the answer (below) and close the connection then.
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Connection", "close")
	}
	p := Problem{
		Type:      "urn:lambda:problem:" + kind.String(),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: w.Header().Get("X-Request-Id"),
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
	if linger {
		drainBody(w, r)
	}
}

// A 413 is answered before the body has been read. Closing the connection then, with
// the rest of the body unread, resets it — and a client that writes its whole body before
// it reads the answer (Python's urllib and requests) sees the reset, not the 413. So the
// body is read on and discarded after the answer, up to drainBytes and drainTime, before
// the connection closes.
const (
	drainBytes = 64 << 20
	drainTime  = 5 * time.Second
)

// bodyMayFollow reports whether the client may still be sending a body: not when it asked
// for 100-continue with a length we refused before reading (it waits for our answer and
// sends nothing).
func bodyMayFollow(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	return !(strings.EqualFold(r.Header.Get("Expect"), "100-continue") && r.ContentLength > 0)
}

// drainBody sends what was written and discards the rest of the body, within bounds.
func drainBody(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(drainTime))
	_, _ = io.CopyN(io.Discard, r.Body, drainBytes)
}

// decode reads a JSON object body of at most limit bytes into v, strictly: unknown
// fields, trailing data and malformed JSON are Invalid, an oversized body is TooLarge.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	// The body is JSON whatever the Content-Type says (curl -d sends a form type); a
	// multipart upload is the one clear mistake worth naming.
	if strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "multipart/") {
		return fault.New(fault.Invalid, "the request body must be JSON, not a multipart form")
	}
	if r.ContentLength > limit { // refused before a byte is read (a 100-continue is not sent)
		return fault.New(fault.TooLarge, "request body is larger than %d bytes", limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err, limit)
		}
		return fault.New(fault.Invalid, "request body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return fault.New(fault.TooLarge, "request body is larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return fault.New(fault.Invalid, "request body is empty")
	case errors.As(err, &syn):
		return fault.New(fault.Invalid, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		return fault.New(fault.Invalid, "field %q must be %s", typ.Field, typ.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fault.New(fault.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Invalid, "malformed JSON: unexpected end of body")
	default:
		return fault.New(fault.Invalid, "malformed JSON: %s", err.Error())
	}
}

// readEvent reads an invoke body: any JSON value up to limit bytes; empty means null.
func readEvent(w http.ResponseWriter, r *http.Request, limit int64) (json.RawMessage, error) {
	if r.ContentLength > limit {
		return nil, fault.New(fault.TooLarge, "event is larger than %d bytes", limit)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fault.New(fault.TooLarge, "event is larger than %d bytes", limit)
		}
		return nil, fault.Wrap(fault.Invalid, err, "reading the event")
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(raw) {
		return nil, fault.New(fault.Invalid, "the event (request body) is not valid JSON")
	}
	return raw, nil
}

func invalid(format string, args ...any) error {
	return fault.New(fault.Invalid, format, args...)
}

// pageLimit parses a list's limit parameter (1–500); empty keeps def.
func pageLimit(l string, def int) (int, error) {
	if l == "" {
		return def, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 500 {
		return 0, invalid("limit must be between 1 and 500")
	}
	return n, nil
}

// encodePage writes one page of a list: its items under key and, when more follow, the
// cursor of the next page.
func encodePage(w http.ResponseWriter, key string, items any, next string) {
	body := map[string]any{key: items}
	if next != "" {
		body["next_cursor"] = next
	}
	encode(w, http.StatusOK, body)
}
