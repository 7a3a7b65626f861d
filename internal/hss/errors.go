package hss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// APIError is an HSS response with status >= 400.
type APIError struct {
	StatusCode int
	Code       string // error_code, e.g. HSS.0001, APIGW.0308
	Message    string // error_msg, or a snippet of a non-JSON body
	RequestID  string // X-Request-Id
	RetryAfter time.Duration
	Op         string // API operation, e.g. CreateManualImageScanTask
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hss: %s: %d", e.Op, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// ErrTimeout marks a call that ran out of the client's per-call timeout
// (Config.Timeout) or the transport's, as opposed to the caller's context.
var ErrTimeout = errors.New("request timed out")

const maxErrorBody = 64 << 10

// snippetLen bounds how much of a non-JSON error body is kept: enough to
// recognise a proxy's HTML page, not enough to flood a log.
const snippetLen = 200

// newAPIError reads resp's body (at most 64 KiB) into an APIError. The body
// is JSON {"error_code","error_msg"}, or {"code","message"}, possibly one
// object deeper (the SDK searches nested objects too); anything else is kept
// as a short snippet.
func newAPIError(op string, resp *http.Response, now time.Time) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		Op:         op,
		RequestID:  resp.Header.Get("X-Request-Id"),
	}
	e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var m map[string]any
	if CheckDepth(data, MaxDepth) == nil && json.Unmarshal(data, &m) == nil {
		if code, msg, ok := errorFields(m); ok {
			e.Code, e.Message = code, msg
			if e.RequestID == "" {
				e.RequestID, _ = m["request_id"].(string)
			}
			return e
		}
	}
	e.Message = snippet(data)
	return e
}

var errorKeys = [][2]string{{"error_code", "error_msg"}, {"code", "message"}}

func errorFields(m map[string]any) (code, msg string, ok bool) {
	for _, k := range errorKeys {
		code, _ = m[k[0]].(string)
		msg, _ = m[k[1]].(string)
		if code != "" || msg != "" {
			return code, msg, true
		}
	}
	for _, v := range m {
		if nested, isObj := v.(map[string]any); isObj {
			if code, msg, ok = errorFields(nested); ok {
				return code, msg, true
			}
		}
	}
	return "", "", false
}

func snippet(data []byte) string {
	s := strings.Join(strings.Fields(string(data)), " ")
	if len(s) <= snippetLen {
		return s
	}
	cut := snippetLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date. Only a
// positive delay counts: HSS does not document the header at all.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		// A day is far beyond any sane pause and keeps the multiplication
		// from overflowing.
		if secs <= 0 || secs > int64(24*time.Hour/time.Second) {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now), true
	}
	return 0, false
}

// Retryable reports whether err is worth retrying: 429 and 5xx responses,
// the client's own timeouts, broken connections and network errors. The
// caller's context being cancelled or past its deadline is not retryable:
// the caller has given up.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		return apiErr.StatusCode == http.StatusTooManyRequests || apiErr.StatusCode >= 500
	}
	if errors.Is(err, ErrTimeout) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	// *url.Error is itself a net.Error, whatever it wraps (a bad URL, a
	// certificate error): look at what it wraps.
	if urlErr, ok := errors.AsType[*url.Error](err); ok {
		err = urlErr.Err
	}
	_, ok := errors.AsType[net.Error](err)
	return ok
}

// IsAuth reports whether err is an authentication or authorisation failure
// (401 or 403): retrying will not help, the credentials must change.
func IsAuth(err error) bool {
	apiErr, ok := errors.AsType[*APIError](err)
	return ok && (apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden)
}

// RetryAfter returns the delay the server asked for with Retry-After.
func RetryAfter(err error) (time.Duration, bool) {
	apiErr, ok := errors.AsType[*APIError](err)
	if !ok || apiErr.RetryAfter <= 0 {
		return 0, false
	}
	return apiErr.RetryAfter, true
}
