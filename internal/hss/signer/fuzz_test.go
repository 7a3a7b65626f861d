package signer

import (
	"net/http"
	"testing"
)

// FuzzVerify feeds Verify hostile Authorization headers, dates, targets and
// bodies: it must never panic, and a request our Sign produced for the same
// target must always verify.
func FuzzVerify(f *testing.F) {
	f.Add("SDK-HMAC-SHA256 Access=AKIDEXAMPLE0000, SignedHeaders=x-sdk-date, Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
		"20060102T150405Z", "/path?limit=1", "application/json", "r", []byte("{}\n"))
	f.Add("SDK-HMAC-SHA256 ,,,==", "", "/%zz?a=%zz", "", "", []byte(nil))
	f.Add("SDK-HMAC-SHA256 Access=a, SignedHeaders=;;x-sdk-date;host, Signature=", "99991231T235959Z", "/a b/?x&y=1&x=2", "text/plain", "\x00", []byte("x"))
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

		if err := Sign(req, body, testAK, testSK, vectorTime); err != nil {
			return // e.g. an unparseable query
		}
		if _, err := Verify(req, body, lookup, vectorTime, 0); err != nil {
			t.Fatalf("Verify rejected our own signature: %v\nAuthorization: %s", err, req.Header.Get("Authorization"))
		}
	})
}
