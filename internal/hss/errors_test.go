package hss

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNewAPIError(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantCode   string
		wantMsg    string
		wantID     string
		wantRetry  time.Duration
		wantString string
	}{
		{
			name: "hss error", status: 400, header: http.Header{"X-Request-Id": {"abc"}},
			body:     `{"error_code":"HSS.0001","error_msg":"invalid parameter rate_limit"}`,
			wantCode: "HSS.0001", wantMsg: "invalid parameter rate_limit", wantID: "abc",
			wantString: "hss: CreateManualImageScanTask: 400 HSS.0001: invalid parameter rate_limit (request id abc)",
		},
		{
			name: "code/message", status: 401, body: `{"code":"APIGW.0301","message":"Incorrect IAM authentication information: verify aksk signature fail","request_id":"r-1"}`,
			wantCode: "APIGW.0301", wantMsg: "Incorrect IAM authentication information: verify aksk signature fail", wantID: "r-1",
		},
		{
			name: "nested", status: 403, body: `{"error":{"code":"IAM.0002","message":"forbidden"}}`,
			wantCode: "IAM.0002", wantMsg: "forbidden",
		},
		{
			name: "throttled with seconds", status: 429, header: http.Header{"Retry-After": {"3"}},
			body:     `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second"}`,
			wantCode: "APIGW.0308", wantMsg: "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second", wantRetry: 3 * time.Second,
		},
		{
			name: "retry-after date", status: 503, header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}},
			body: "", wantRetry: 90 * time.Second, wantString: "hss: CreateManualImageScanTask: 503",
		},
		{
			name: "html body", status: 502, body: "<html>\n  <body>Bad   Gateway</body>\n</html>",
			wantMsg: "<html> <body>Bad Gateway</body> </html>", wantString: "hss: CreateManualImageScanTask: 502: <html> <body>Bad Gateway</body> </html>",
		},
		{
			name: "long body truncated", status: 500, body: strings.Repeat("é", 300),
			wantMsg: strings.Repeat("é", 100) + "…",
		},
		{
			name: "json without error fields", status: 500, body: `{"status":"down"}`,
			wantMsg: `{"status":"down"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			resp := &http.Response{StatusCode: tt.status, Header: h, Body: io.NopCloser(strings.NewReader(tt.body))}
			e := newAPIError("CreateManualImageScanTask", resp, now)
			if e.StatusCode != tt.status || e.Code != tt.wantCode || e.Message != tt.wantMsg || e.RequestID != tt.wantID || e.RetryAfter != tt.wantRetry {
				t.Errorf("got %+v", e)
			}
			if tt.wantString != "" && e.Error() != tt.wantString {
				t.Errorf("Error() = %q, want %q", e.Error(), tt.wantString)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"5", 5 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, false},
		{"-3", 0, false},
		{"86401", 0, false},
		{"soon", 0, false},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, false},
	}
	for _, tt := range tests {
		if got, ok := parseRetryAfter(tt.in, now); got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestRetryable(t *testing.T) {
	t.Parallel()
	api := func(status int) error { return fmt.Errorf("batch: %w", &APIError{StatusCode: status}) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"400", api(400), false},
		{"401", api(401), false},
		{"404", api(404), false},
		{"429", api(429), true},
		{"500", api(500), true},
		{"503", api(503), true},
		{"client timeout", fmt.Errorf("hss: op: %w: %w", ErrTimeout, context.DeadlineExceeded), true},
		{"caller cancelled", fmt.Errorf("hss: op: %w", context.Canceled), false},
		{"caller deadline", &url.Error{Op: "Post", URL: "u", Err: context.DeadlineExceeded}, false},
		{"connection reset", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, true},
		{"connection refused", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{"dns", &url.Error{Op: "Post", URL: "u", Err: &net.DNSError{Err: "no such host", Name: "hss"}}, true},
		{"net timeout", &url.Error{Op: "Post", URL: "u", Err: timeoutErr{}}, true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"server closed", &url.Error{Op: "Post", URL: "u", Err: io.EOF}, true},
		{"bad URL", &url.Error{Op: "parse", URL: "::", Err: errors.New("missing protocol scheme")}, false},
		{"validation", &ValidationError{"rate_limit", "x"}, false},
		{"other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestIsAuthAndRetryAfter(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]bool{400: false, 401: true, 403: true, 429: false, 500: false} {
		if got := IsAuth(fmt.Errorf("x: %w", &APIError{StatusCode: status})); got != want {
			t.Errorf("IsAuth(%d) = %v", status, got)
		}
	}
	if IsAuth(errors.New("401")) {
		t.Error("IsAuth of a plain error")
	}
	if d, ok := RetryAfter(fmt.Errorf("x: %w", &APIError{StatusCode: 429, RetryAfter: 2 * time.Second})); d != 2*time.Second || !ok {
		t.Errorf("RetryAfter = %s, %v", d, ok)
	}
	if _, ok := RetryAfter(&APIError{StatusCode: 429}); ok {
		t.Error("RetryAfter without header reported one")
	}
	if _, ok := RetryAfter(errors.New("x")); ok {
		t.Error("RetryAfter of a plain error reported one")
	}
}
