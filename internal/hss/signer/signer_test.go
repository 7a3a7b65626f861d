package signer

import (
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
		})
	}
}

func TestSignHeaders(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequest(http.MethodPost, "https://hss.example/v5/p/image/image-scan/tasks", nil)
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	req.Header.Set("X-Project-Id", "p")
	req.Header.Set("region", "cn-north-4")
	req.Header.Set("User-Agent", "scanq")
	req.Header.Set("X-Security-Token", "tok")
	req.Header.Set("Authorization", "stale") // from an earlier attempt: replaced, not signed
	if err := Sign(req, []byte("{}\n"), "ak", "sk", vectorTime); err != nil {
		t.Fatal(err)
	}
	a, err := parseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	want := "region;user-agent;x-project-id;x-sdk-date;x-security-token"
	if got := strings.Join(a.signedHeaders, ";"); got != want {
		t.Errorf("signed headers = %s, want %s", got, want)
	}
	if req.Header.Get(HeaderContentSHA256) != "" {
		t.Errorf("JSON body got %s", HeaderContentSHA256)
	}
}

func TestSignUnsignedPayload(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"application/octet-stream", "multipart/form-data; boundary=x", ""} {
		req, _ := http.NewRequest(http.MethodPost, "https://hss.example/upload", nil)
		req.Header["Content-Type"] = []string{ct}
		if err := Sign(req, []byte("data"), "ak", "sk", vectorTime); err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get(HeaderContentSHA256); got != UnsignedPayload {
			t.Errorf("Content-Type %q: %s = %q, want %s", ct, HeaderContentSHA256, got, UnsignedPayload)
		}
		if !strings.Contains(req.Header.Get("Authorization"), "x-sdk-content-sha256") {
			t.Errorf("Content-Type %q: %s not signed", ct, HeaderContentSHA256)
		}
	}
}

func TestSignRequiresKeys(t *testing.T) {
	t.Parallel()
	for _, keys := range [][2]string{{"", "sk"}, {"ak", ""}} {
		req, _ := http.NewRequest(http.MethodGet, "https://hss.example/", nil)
		if err := Sign(req, nil, keys[0], keys[1], vectorTime); err == nil {
			t.Errorf("Sign(ak=%q, sk set=%v) succeeded", keys[0], keys[1] != "")
		}
	}
}

func TestCanonicalPieces(t *testing.T) {
	t.Parallel()
	// From the SDK's TestSigner_canonicalQueryString, with the query as the
	// SDK puts it on the wire.
	q, err := canonicalQuery("enable=true&limit=1&multi=3&multi=1&multi=2&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29")
	if err != nil {
		t.Fatal(err)
	}
	if want := "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"; q != want {
		t.Errorf("canonical query\n got %s\nwant %s", q, want)
	}
	if q, _ := canonicalQuery("flag&b=2"); q != "b=2&flag=" {
		t.Errorf("query without value: %s", q)
	}
	if _, err := canonicalQuery("a=%zz"); err == nil {
		t.Error("bad query escape accepted")
	}
	uris := map[string]string{
		"":                   "/",
		"/":                  "/",
		"/v5/p/image/tasks":  "/v5/p/image/tasks/",
		"/v5/p q/a~b.c_d-e/": "/v5/p%20q/a~b.c_d-e/",
		"/v5/\u4e00/x:y@z":   "/v5/%E4%B8%80/x%3Ay%40z/",
		"/v5/p//double":      "/v5/p//double/",
	}
	for in, want := range uris {
		if got := canonicalURI(in); got != want {
			t.Errorf("canonicalURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignatureMultiValueAndHostHeaders(t *testing.T) {
	t.Parallel()
	// Repeated values are sorted; a non-canonical key spelling still counts;
	// a server sees Host in req.Host.
	a, _ := http.NewRequest(http.MethodGet, "https://hss.example/x", nil)
	a.Header["X-Multi"] = []string{"b", " a "}
	a.Header["host"] = []string{"hss.example"}
	b, _ := http.NewRequest(http.MethodGet, "https://hss.example/x", nil)
	b.Header["X-Multi"] = []string{"a", "b"}
	b.Host = "hss.example"
	signed := []string{"host", "x-multi"}
	ca, _ := canonicalRequest(a, bodyHash(nil), signed)
	cb, _ := canonicalRequest(b, bodyHash(nil), signed)
	if ca != cb {
		t.Errorf("canonical requests differ:\n%s\n--\n%s", ca, cb)
	}
	if !strings.Contains(ca, "host:hss.example\nx-multi:a\nx-multi:b\n") {
		t.Errorf("canonical headers wrong:\n%s", ca)
	}
}

// Every batch submission signs once; the emulator verifies every request.
func BenchmarkSignVerify(b *testing.B) {
	body := []byte(`{"rate_limit":1000,"image_info":[` + strings.Repeat(`{"namespace":"team","image_name":"nginx","image_version":"1.27"},`, 99) + `{}]}` + "\n")
	lookup := func(string) (string, bool) { return "sk", true }
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "https://hss.example/v5/p/image/image-scan/tasks?global_image_type=registry", nil)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Project-Id", "p")
		if err := Sign(req, body, "ak", "sk", vectorTime); err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(req, body, lookup, vectorTime, 0); err != nil {
			b.Fatal(err)
		}
	}
}
