package signer

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

var vectorTime = time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)

// The two vectors published with the SDK (core/auth/signer/signer_test.go)
// and repeated in HSS-API.md.
func TestSignPublishedVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, url, contentType, body, want string
	}{
		{"get", http.MethodGet, "https://example.huaweicloud.com/path?limit=1", "", "",
			"5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"},
		{"post json", http.MethodPost, "https://example.huaweicloud.com/path?key=value", "application/json", "{\"Name\":\"test\",\"Id\":1}\n",
			"cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			// Names with "_" are never signed: the SDK's vectors carry one.
			req.Header["TEST_UNDERSCORE"] = []string{"TEST_VALUE"}
			if err := Sign(req, []byte(tt.body), "AccessKey", "SecretKey", vectorTime); err != nil {
				t.Fatal(err)
			}
			want := "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature=" + tt.want
			if got := req.Header.Get("Authorization"); got != want {
				t.Errorf("Authorization = %q\nwant            %q", got, want)
			}
			if got := req.Header.Get(HeaderDate); got != "20060102T150405Z" {
				t.Errorf("X-Sdk-Date = %q", got)
			}
			_ = bytes.MinRead
		})
	}
}
