package signer

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	testAK = "AKIDEXAMPLE0000"
	testSK = "sk-very-secret-value"
)

func lookup(ak string) (string, bool) {
	if ak == testAK {
		return testSK, true
	}
	return "", false
}

var serverNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// signedRequest returns a request as a client signed it, and its body.
func signedRequest(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	body := []byte(`{"is_all":true}` + "\n")
	req, err := http.NewRequest(http.MethodPost, "https://hss.example/v5/p1/image/image-scan/tasks?global_image_type=local&enterprise_project_id=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Project-Id", "p1")
	req.Header.Set("region", "cn-north-4")
	if err := Sign(req, body, testAK, testSK, serverNow.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	return req, body
}

func TestVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	req, body := signedRequest(t)
	ak, err := Verify(req, body, lookup, serverNow, 0)
	if err != nil || ak != testAK {
		t.Fatalf("Verify = %q, %v", ak, err)
	}
	// Headers that were not signed may change in transit.
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	req.Header.Set("Accept-Encoding", "gzip")
	if _, err := Verify(req, body, lookup, serverNow, 0); err != nil {
		t.Errorf("after unsigned header changes: %v", err)
	}
}

func TestVerifyFailures(t *testing.T) {
	t.Parallel()
	setAuth := func(v string) func(*http.Request, *[]byte) {
		return func(r *http.Request, _ *[]byte) { r.Header.Set("Authorization", v) }
	}
	replaceAuth := func(old, new string) func(*http.Request, *[]byte) {
		return func(r *http.Request, _ *[]byte) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), old, new, 1))
		}
	}
	sig := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		mutate func(*http.Request, *[]byte)
		now    time.Time
		skew   time.Duration
		want   error
	}{
		{"no authorization", func(r *http.Request, _ *[]byte) { r.Header.Del("Authorization") }, serverNow, 0, ErrMissing},
		{"other scheme", setAuth("Bearer abc"), serverNow, 0, ErrMalformed},
		{"no parameters", setAuth("SDK-HMAC-SHA256 "), serverNow, 0, ErrMalformed},
		{"no access", setAuth("SDK-HMAC-SHA256 SignedHeaders=x-sdk-date, Signature=" + sig), serverNow, 0, ErrMalformed},
		{"empty access", setAuth("SDK-HMAC-SHA256 Access=, SignedHeaders=x-sdk-date, Signature=" + sig), serverNow, 0, ErrMalformed},
		{"duplicate parameter", setAuth("SDK-HMAC-SHA256 Access=a, Access=b, SignedHeaders=x-sdk-date, Signature=" + sig), serverNow, 0, ErrMalformed},
		{"unknown parameter", setAuth("SDK-HMAC-SHA256 Access=a, Foo=b, SignedHeaders=x-sdk-date, Signature=" + sig), serverNow, 0, ErrMalformed},
		{"parameter without =", setAuth("SDK-HMAC-SHA256 Access=a, SignedHeaders, Signature=" + sig), serverNow, 0, ErrMalformed},
		{"short signature", setAuth("SDK-HMAC-SHA256 Access=a, SignedHeaders=x-sdk-date, Signature=abc"), serverNow, 0, ErrMalformed},
		{"upper-case signature", setAuth("SDK-HMAC-SHA256 Access=a, SignedHeaders=x-sdk-date, Signature=" + strings.Repeat("A", 64)), serverNow, 0, ErrMalformed},
		{"date not signed", replaceAuth("x-sdk-date", "x-other"), serverNow, 0, ErrMalformed},
		{"authorization signed", replaceAuth("SignedHeaders=", "SignedHeaders=authorization;"), serverNow, 0, ErrMalformed},
		{"upper-case signed header", replaceAuth("SignedHeaders=", "SignedHeaders=Region;"), serverNow, 0, ErrMalformed},
		{"empty signed header", replaceAuth("SignedHeaders=", "SignedHeaders=;"), serverNow, 0, ErrMalformed},
		{"no date", func(r *http.Request, _ *[]byte) { r.Header.Del(HeaderDate) }, serverNow, 0, ErrMalformed},
		{"bad date", func(r *http.Request, _ *[]byte) { r.Header.Set(HeaderDate, "2025-03-01T12:00:00Z") }, serverNow, 0, ErrMalformed},
		{"bad query", func(r *http.Request, _ *[]byte) { r.URL.RawQuery = "a=%zz" }, serverNow, 0, ErrMalformed},
		{"unsigned JSON payload", func(r *http.Request, _ *[]byte) { r.Header.Set(HeaderContentSHA256, UnsignedPayload) }, serverNow, 0, ErrMalformed},
		{"unknown key", replaceAuth("Access="+testAK, "Access=AKOTHER"), serverNow, 0, ErrUnknownKey},
		{"body changed", func(_ *http.Request, b *[]byte) { *b = []byte(`{"is_all":false}` + "\n") }, serverNow, 0, ErrBadSignature},
		{"query changed", func(r *http.Request, _ *[]byte) {
			r.URL.RawQuery = "global_image_type=registry&enterprise_project_id=0"
		}, serverNow, 0, ErrBadSignature},
		{"path changed", func(r *http.Request, _ *[]byte) { r.URL.Path = "/v5/p2/image/image-scan/tasks" }, serverNow, 0, ErrBadSignature},
		{"method changed", func(r *http.Request, _ *[]byte) { r.Method = http.MethodPut }, serverNow, 0, ErrBadSignature},
		{"signed header changed", func(r *http.Request, _ *[]byte) { r.Header.Set("X-Project-Id", "p2") }, serverNow, 0, ErrBadSignature},
		{"signed header removed", func(r *http.Request, _ *[]byte) { r.Header.Del("Region") }, serverNow, 0, ErrBadSignature},
		{"date changed", func(r *http.Request, _ *[]byte) { r.Header.Set(HeaderDate, "20250301T115800Z") }, serverNow, 0, ErrBadSignature},
		{"signature changed", replaceAuth("Signature=", "Signature=0"), serverNow, 0, ErrMalformed},
		{"wrong body hash header", func(r *http.Request, _ *[]byte) { r.Header.Set(HeaderContentSHA256, strings.Repeat("0", 64)) }, serverNow, 0, ErrBadSignature},
		{"too old", nil, serverNow.Add(15 * time.Minute), 0, ErrClockSkew},
		{"from the future", nil, serverNow.Add(-3 * time.Minute), time.Minute, ErrClockSkew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, body := signedRequest(t)
			if tt.mutate != nil {
				tt.mutate(req, &body)
			}
			expected, _ := signature(req, payloadHash(req.Header, bodyHash(body)), signedHeaders(req.Header), req.Header.Get(HeaderDate), testSK)
			ak, err := Verify(req, body, lookup, tt.now, tt.skew)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %q, %v; want %v", ak, err, tt.want)
			}
			if ak != "" {
				t.Errorf("failed Verify returned access key %q", ak)
			}
			msg := err.Error()
			for _, secret := range []string{testSK, testAK, expected} {
				if secret != "" && strings.Contains(msg, secret) {
					t.Errorf("error %q leaks %q", msg, secret)
				}
			}
		})
	}
}

func TestVerifySkewBoundary(t *testing.T) {
	t.Parallel()
	req, body := signedRequest(t) // signed one minute before serverNow
	if _, err := Verify(req, body, lookup, serverNow, time.Minute); err != nil {
		t.Errorf("skew exactly at the limit: %v", err)
	}
	if _, err := Verify(req, body, lookup, serverNow.Add(time.Second), time.Minute); !errors.Is(err, ErrClockSkew) {
		t.Errorf("skew one second over the limit: %v", err)
	}
	if _, err := Verify(req, body, lookup, serverNow.Add(14*time.Minute), 0); err != nil {
		t.Errorf("default skew of 15m: %v", err)
	}
}

func TestVerifyUnsignedPayload(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequest(http.MethodPut, "https://hss.example/v5/p/upload", nil)
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := Sign(req, []byte("original"), testAK, testSK, serverNow); err != nil {
		t.Fatal(err)
	}
	// The body is not part of the signature, so any body verifies.
	if _, err := Verify(req, []byte("other"), lookup, serverNow, 0); err != nil {
		t.Errorf("unsigned payload: %v", err)
	}
}

// Parse judges a request from its headers alone, under a server's policy;
// Check then needs only the body's hash.
func TestParsePolicy(t *testing.T) {
	t.Parallel()
	strict := Policy{SignedPayload: true, SignedIfPresent: []string{"region", "x-project-id"}}
	sign := func(t *testing.T, ct string, before, after map[string]string) (*http.Request, []byte) {
		t.Helper()
		body := []byte(`{"is_all":true}`)
		req, err := http.NewRequest(http.MethodPost, "https://hss.example/v5/p1/image/image-scan/tasks", nil)
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for k, v := range before {
			req.Header.Set(k, v)
		}
		if err := Sign(req, body, testAK, testSK, serverNow); err != nil {
			t.Fatal(err)
		}
		for k, v := range after {
			req.Header.Set(k, v)
		}
		return req, body
	}
	for _, tt := range []struct {
		name          string
		ct            string
		before, after map[string]string
		policy        Policy
		want          error
	}{
		{"as the SDK signs", "application/json", map[string]string{"Region": "r", "X-Project-Id": "p1", "User-Agent": "sdk"}, nil, strict, nil},
		{"x-sdk-date alone, nothing else sent", "application/json", nil, nil, strict, nil},
		{"unsigned region", "application/json", nil, map[string]string{"Region": "r"}, strict, ErrMalformed},
		{"unsigned x-project-id", "application/json", nil, map[string]string{"X-Project-Id": "p1"}, strict, ErrMalformed},
		{"unsigned region, SDK rules", "application/json", nil, map[string]string{"Region": "r"}, Policy{}, nil},
		{"unsigned user-agent", "application/json", nil, map[string]string{"User-Agent": "x"}, strict, nil},
		{"UNSIGNED-PAYLOAD refused", "text/plain", nil, nil, strict, ErrMalformed},
		{"UNSIGNED-PAYLOAD, SDK rules", "text/plain", nil, nil, Policy{}, nil},
		{"UNSIGNED-PAYLOAD declared for JSON", "application/json", map[string]string{HeaderContentSHA256: UnsignedPayload}, nil, Policy{}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, body := sign(t, tt.ct, tt.before, tt.after)
			p, err := Parse(req, lookup, tt.policy)
			if err == nil {
				sum := sha256.Sum256(body)
				err = p.Check(sum[:], serverNow)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse/Check = %v, want %v", err, tt.want)
			}
		})
	}

	// An unknown key is refused before the body.
	req, _ := sign(t, "application/json", nil, nil)
	if _, err := Parse(req, func(string) (string, bool) { return "", false }, strict); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	// The body's hash decides.
	p, err := Parse(req, lookup, strict)
	if err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte(`{"is_all":false}`))
	if err := p.Check(other[:], serverNow); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another body: %v", err)
	}
	if p.AccessKey() != testAK || len(p.Signature()) != 64 || !p.SignedAt().Equal(serverNow) {
		t.Errorf("pending: %s %s %s", p.AccessKey(), p.Signature(), p.SignedAt())
	}
}
