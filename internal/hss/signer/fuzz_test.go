package signer

import (
	"crypto/sha256"
	"net/http"
	"testing"
)

// FuzzVerify feeds Verify hostile Authorization headers, dates, targets and
// bodies: it must never panic, and a request our Sign produced for the same
// target must always verify. Parse and Check under a server's strict policy
// (signed payload, region and x-project-id signed when sent) must never
// accept what Verify refuses, and must accept our own JSON signatures.
func FuzzVerify(f *testing.F) {
	f.Add("SDK-HMAC-SHA256 Access=AKIDEXAMPLE0000, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
		"20060102T150405Z", "/path?limit=1", "application/json", "r", []byte("{}\n"))
	f.Add("SDK-HMAC-SHA256 ,,,==", "", "/%zz?a=%zz", "", "", []byte(nil))
	f.Add("SDK-HMAC-SHA256 Access=a, SignedHeaders=;;x-sdk-date;host, Signature=", "99991231T235959Z", "/a b/?x&y=1&x=2", "text/plain", "\x00", []byte("x"))
	// Issue 10: an unsigned payload (non-JSON type) and a signature over
	// x-sdk-date alone on a request that carries a region.
	f.Add("SDK-HMAC-SHA256 Access=AKIDEXAMPLE0000, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
		"20060102T150405Z", "/v5/p/image/image-scan/tasks", "text/plain", "cn-north-4", []byte(`{"is_all":true}`))
	f.Add("SDK-HMAC-SHA256 Access=AKIDEXAMPLE0000, SignedHeaders=content-type;x-sdk-date, Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59",
		"20060102T150405Z", "/path?key=value", "application/json; charset=utf-8", "", []byte("{\"Name\":\"test\",\"Id\":1}\n"))
	f.Fuzz(func(t *testing.T, auth, date, target, contentType, region string, body []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://hss.example"+target, nil)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set(HeaderDate, date)
		req.Header["Content-Type"] = []string{contentType}
		req.Header["Region"] = []string{region}
		ak, err := Verify(req, body, lookup, vectorTime, 0)
		if err == nil && ak != testAK {
			t.Fatalf("Verify accepted unknown access key %q", ak)
		}
		if strictAccepts(req, body) && err != nil {
			t.Fatalf("the strict policy accepted what Verify refused: %v", err)
		}

		if err := Sign(req, body, testAK, testSK, vectorTime); err != nil {
			return // e.g. an unparseable query
		}
		if _, err := Verify(req, body, lookup, vectorTime, 0); err != nil {
			t.Fatalf("Verify rejected our own signature: %v\nAuthorization: %s", err, req.Header.Get("Authorization"))
		}
		if signsPayload(contentType) && !strictAccepts(req, body) {
			t.Fatalf("the strict policy rejected our own JSON signature\nAuthorization: %s", req.Header.Get("Authorization"))
		}
	})
}

func strictAccepts(req *http.Request, body []byte) bool {
	p, err := Parse(req, lookup, Policy{SignedPayload: true, SignedIfPresent: []string{"region", "x-project-id"}})
	if err != nil {
		return false
	}
	sum := sha256.Sum256(body)
	return p.Check(sum[:], vectorTime) == nil
}
